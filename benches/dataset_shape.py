#!/usr/bin/env python3
"""Prints a JSONL dataset's mean request shape as two numbers: bytes of message text, and the
tokens a request asks for (its max_completion_tokens or max_tokens, else 16 as the benches ask).
The workload benches give their fixed-prompt peer this shape, so the comparison is about
drawing requests, not about the server reading and writing more."""
import json
import sys

lines = text = asked = 0
with open(sys.argv[1], encoding="utf-8") as f:
    for line in f:
        if not line.strip():
            continue
        request = json.loads(line)
        lines += 1
        text += sum(len(str(m.get("content") or "").encode()) for m in request.get("messages", []))
        asked += request.get("max_completion_tokens") or request.get("max_tokens") or 16
print(round(text / max(lines, 1)), round(asked / max(lines, 1)))
