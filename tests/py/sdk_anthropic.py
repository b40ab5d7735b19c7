"""The Anthropic Python SDK against gauntlet mocks speaking the Messages API.

Usage: python3 sdk_anthropic.py HEALTHY_URL OVERLOADED_URL (base URLs without /v1)

Against the healthy mock: one plain `messages.create` and one `messages.stream`, read with the
SDK's own parsers (a shape the SDK does not know raises here). Against the overloaded mock
(a 529 fault): one call without retries, to read the error the SDK raises. Prints one JSON line
for the Rust test to judge; exits non-zero if the `anthropic` package is missing.
"""

import json
import sys

try:
    import anthropic
except ImportError:
    sys.exit("the `anthropic` Python package is missing: pip install anthropic")

KEY = "sk-ant-sdk-test"
MESSAGES = [{"role": "user", "content": "Say hello"}]


def main(healthy: str, overloaded: str) -> None:
    client = anthropic.Anthropic(base_url=healthy, api_key=KEY, max_retries=0, timeout=30)
    plain = client.messages.create(
        model="claude-test", max_tokens=7, system="Be brief.", messages=MESSAGES
    )

    events = []
    text = []
    with client.messages.stream(
        model="claude-test", max_tokens=5, messages=MESSAGES
    ) as stream:
        for event in stream:
            events.append(event.type)
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                text.append(event.delta.text)
        final = stream.get_final_message()

    bad = anthropic.Anthropic(base_url=overloaded, api_key=KEY, max_retries=0, timeout=30)
    error = None
    try:
        bad.messages.create(model="claude-test", max_tokens=3, messages=MESSAGES)
    except anthropic.APIStatusError as e:
        body = e.body if isinstance(e.body, dict) else {}
        error = {
            "status": e.status_code,
            "class": type(e).__name__,
            "type": (body.get("error") or {}).get("type"),
        }

    print(
        json.dumps(
            {
                "sdk_version": anthropic.__version__,
                "plain": {
                    "id": plain.id,
                    "role": plain.role,
                    "text": plain.content[0].text,
                    "stop_reason": plain.stop_reason,
                    "input_tokens": plain.usage.input_tokens,
                    "output_tokens": plain.usage.output_tokens,
                },
                "stream": {
                    "events": events,
                    "text": "".join(text),
                    "final_text": final.content[0].text,
                    "stop_reason": final.stop_reason,
                    "output_tokens": final.usage.output_tokens,
                    "input_tokens": final.usage.input_tokens,
                },
                "error": error,
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: sdk_anthropic.py HEALTHY_URL OVERLOADED_URL")
    main(sys.argv[1], sys.argv[2])
