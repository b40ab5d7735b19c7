"""The OpenAI Python SDK against gauntlet's gateway, whose upstream speaks Anthropic's Messages.

Usage: python3 sdk_openai_via_anthropic.py GATEWAY_BASE_URL (ending in /v1)

Model `claude-test` is routed to an Anthropic-format mock; `claude-down` to one answering 529.
The SDK parses what the gateway translated: a plain completion, a stream with usage, and the
error a 529 turns into. Prints one JSON line for the Rust test to judge.
"""

import json
import sys

try:
    import openai
except ImportError:
    sys.exit("the `openai` Python package is missing: pip install openai")

KEY = "gk-test"
MESSAGES = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Say hello"},
]


def main(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=30)
    plain = client.chat.completions.create(model="claude-test", messages=MESSAGES, max_tokens=6)

    stream = client.chat.completions.create(
        model="claude-test",
        messages=MESSAGES,
        max_tokens=4,
        stream=True,
        stream_options={"include_usage": True},
    )
    pieces = []
    finish = None
    usage = None
    roles = []
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage
        for choice in chunk.choices:
            if choice.delta.role:
                roles.append(choice.delta.role)
            if choice.delta.content:
                pieces.append(choice.delta.content)
            if choice.finish_reason:
                finish = choice.finish_reason

    error = None
    try:
        client.chat.completions.create(model="claude-down", messages=MESSAGES, max_tokens=3)
    except openai.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        error = {"status": e.status_code, "class": type(e).__name__, "body": body}

    print(
        json.dumps(
            {
                "sdk_version": openai.__version__,
                "plain": {
                    "object": plain.object,
                    "content": plain.choices[0].message.content,
                    "finish": plain.choices[0].finish_reason,
                    "prompt_tokens": plain.usage.prompt_tokens,
                    "completion_tokens": plain.usage.completion_tokens,
                    "total_tokens": plain.usage.total_tokens,
                },
                "stream": {
                    "pieces": pieces,
                    "roles": roles,
                    "finish": finish,
                    "completion_tokens": usage.completion_tokens if usage else None,
                    "prompt_tokens": usage.prompt_tokens if usage else None,
                },
                "error": error,
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: sdk_openai_via_anthropic.py GATEWAY_BASE_URL")
    main(sys.argv[1])
