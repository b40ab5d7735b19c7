#!/usr/bin/env python3
"""Generates datasets/chat-mix.jsonl: varied OpenAI chat requests for gauntlet's shipped
scenarios. Deterministic: the same SEED writes the same file byte for byte.

    python3 datasets/generate.py            # rewrites datasets/chat-mix.jsonl
    python3 datasets/generate.py --seed 7   # another draw of the same mix

Kinds (share of lines): short questions (50%), long documents to summarise (20%),
multi-turn support chats (20%), tool-using agent turns (10%).
"""
import argparse
import json
import random
from pathlib import Path

SEED = 20261130
LINES = 400

TOPICS = ["billing", "a failed deployment", "password resets", "the mobile app", "invoices",
          "API rate limits", "data export", "single sign-on", "webhooks", "latency spikes"]
QUESTIONS = [
    "What is the capital of {c}?", "How do I reverse a list in {l}?",
    "Explain {t} in one sentence.", "What does HTTP status {s} mean?",
    "Give me three names for a {a} startup.", "Convert {n} miles to kilometres.",
    "Is {l} garbage collected?", "Summarise the causes of {e} in two lines.",
    "What is a good default timeout for {t}?", "Write a haiku about {a}.",
]
FILL = {
    "c": ["France", "Kenya", "Peru", "Japan", "Norway", "Chile", "Egypt", "Canada"],
    "l": ["Rust", "Python", "Go", "Java", "TypeScript", "C#", "Haskell"],
    "t": ["exponential backoff", "a circuit breaker", "consistent hashing", "TLS",
          "prefix caching", "load shedding", "a token bucket"],
    "s": ["429", "503", "418", "301", "401", "504"],
    "a": ["gardening", "logistics", "coffee", "robotics", "insurance", "music"],
    "n": ["3", "26.2", "100", "7.5"],
    "e": ["the 1929 crash", "inflation", "the fall of Rome", "the 2008 crisis"],
}
WORDS = ("the system service request latency gateway provider model capacity queue retry "
         "budget customer report quarter growth margin incident outage region cluster team "
         "plan release feature metric error window policy contract vendor cost usage").split()
TOOLS = [
    {"type": "function", "function": {
        "name": "get_weather", "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"]}}},
    {"type": "function", "function": {
        "name": "search_tickets", "description": "Search support tickets",
        "parameters": {"type": "object", "properties": {
            "query": {"type": "string"}, "limit": {"type": "integer"}}, "required": ["query"]}}},
    {"type": "function", "function": {
        "name": "run_sql", "description": "Run a read-only SQL query",
        "parameters": {"type": "object", "properties": {"sql": {"type": "string"}},
                       "required": ["sql"]}}},
]


def sentence(rng):
    n = rng.randint(8, 22)
    words = [rng.choice(WORDS) for _ in range(n)]
    return " ".join(words).capitalize() + "."


def document(rng, paragraphs):
    return "\n\n".join(" ".join(sentence(rng) for _ in range(rng.randint(4, 9)))
                       for _ in range(paragraphs))


def short_question(rng):
    q = rng.choice(QUESTIONS)
    for k, vals in FILL.items():
        q = q.replace("{" + k + "}", rng.choice(vals))
    return {"messages": [{"role": "user", "content": q}], "max_tokens": rng.choice([64, 128, 256])}


def summarise(rng):
    doc = document(rng, rng.randint(3, 30))
    return {"messages": [
        {"role": "system", "content": "You summarise documents for busy executives."},
        {"role": "user", "content": "Summarise this report in five bullet points:\n\n" + doc}],
        "max_tokens": 400}


def support_chat(rng):
    topic = rng.choice(TOPICS)
    msgs = [{"role": "system", "content": "You are a patient support agent for Acme Cloud."},
            {"role": "user", "content": f"Hi, I have a problem with {topic}."}]
    for _ in range(rng.randint(1, 4)):
        msgs.append({"role": "assistant", "content": sentence(rng) + " " + sentence(rng)})
        msgs.append({"role": "user", "content": sentence(rng)})
    return {"messages": msgs, "max_tokens": 300}


def agent_turn(rng):
    city = rng.choice(FILL["c"])
    msgs = [{"role": "system", "content": "You are an operations agent. Use tools when useful."},
            {"role": "user", "content": f"Check open tickets about {rng.choice(TOPICS)} "
                                        f"and the weather at our {city} office."}]
    if rng.random() < 0.5:
        call_id = f"call_{rng.randrange(16**8):08x}"
        msgs.append({"role": "assistant", "content": None, "tool_calls": [{
            "id": call_id, "type": "function",
            "function": {"name": "get_weather", "arguments": json.dumps({"city": city})}}]})
        msgs.append({"role": "tool", "tool_call_id": call_id,
                     "content": json.dumps({"city": city, "temp_c": rng.randint(-5, 35)})})
        msgs.append({"role": "user", "content": "Thanks, now the tickets please."})
    return {"messages": msgs, "tools": TOOLS, "tool_choice": "auto", "max_tokens": 200}


KINDS = [(short_question, 50), (summarise, 20), (support_chat, 20), (agent_turn, 10)]


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seed", type=int, default=SEED)
    ap.add_argument("--lines", type=int, default=LINES)
    ap.add_argument("--out", type=Path, default=Path(__file__).with_name("chat-mix.jsonl"))
    args = ap.parse_args()
    rng = random.Random(args.seed)
    makers = [m for m, w in KINDS for _ in range(w)]
    with open(args.out, "w", encoding="utf-8", newline="\n") as f:
        for _ in range(args.lines):
            f.write(json.dumps(rng.choice(makers)(rng), separators=(",", ":")) + "\n")


if __name__ == "__main__":
    main()
