"""The openai Python SDK against an endpoint serving OpenAI's Responses API.

Usage: python3 sdk_openai_responses.py URL MODEL (base URL without /v1: a mock or the gateway)

One plain `responses.create` cut at its budget (7 tokens), one `stream=True` cut at 5 tokens
(every event's type and sequence number, the text deltas, the closing response), one run of the
SDK's stream helper (`responses.stream`, which checks every event against the items it
announced), and one stateful request (`previous_response_id`) to read the error the SDK
raises. Everything is read with the SDK's own parsers. Prints one JSON line for the Rust test
to judge; exits non-zero if the `openai` package is missing.
"""

import json
import sys

try:
    import openai
except ImportError:
    sys.exit("the `openai` Python package is missing: pip install openai")

KEY = "sk-sdk-test"


def usage(u):
    if u is None:
        return None
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
        "cached_tokens": u.input_tokens_details.cached_tokens,
        "reasoning_tokens": u.output_tokens_details.reasoning_tokens,
    }


def main(url: str, model: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=30)

    plain = client.responses.create(
        model=model, instructions="Be brief.", input="Say hello", max_output_tokens=7
    )

    events, text, final = [], [], None
    for event in client.responses.create(
        model=model,
        input=[{"role": "user", "content": "Say hello"}],
        max_output_tokens=5,
        stream=True,
    ):
        events.append({"type": event.type, "sequence_number": event.sequence_number})
        if event.type == "response.output_text.delta":
            text.append(event.delta)
        if event.type in ("response.completed", "response.incomplete", "response.failed"):
            final = event.response

    helper_text = []
    with client.responses.stream(model=model, input="Say hello") as stream:
        for event in stream:
            if event.type == "response.output_text.delta":
                helper_text.append(event.delta)
        helper_final = stream.get_final_response()

    refused = None
    try:
        client.responses.create(model=model, input="again", previous_response_id="resp_earlier")
    except openai.APIStatusError as e:
        refused = {"status": e.status_code, "class": type(e).__name__, "param": e.param}

    print(
        json.dumps(
            {
                "sdk_version": openai.__version__,
                "plain": {
                    "id": plain.id,
                    "object": plain.object,
                    "status": plain.status,
                    "incomplete_reason": None
                    if plain.incomplete_details is None
                    else plain.incomplete_details.reason,
                    "output_types": [item.type for item in plain.output],
                    "text": plain.output_text,
                    "usage": usage(plain.usage),
                },
                "stream": {
                    "events": events,
                    "text": "".join(text),
                    "final_status": None if final is None else final.status,
                    "final_text": None if final is None else final.output_text,
                    "usage": None if final is None else usage(final.usage),
                },
                "helper": {
                    "text": "".join(helper_text),
                    "final_text": helper_final.output_text,
                    "status": helper_final.status,
                    "usage": usage(helper_final.usage),
                },
                "refused": refused,
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit("usage: sdk_openai_responses.py URL MODEL")
    main(sys.argv[1], sys.argv[2])
