"""The openai Python SDK against gauntlet's gateway: embeddings, and the Responses API served
by an Anthropic-format upstream and with tool calls.

Usage: python3 sdk_openai_gateway_apis.py GATEWAY_URL (base URL without /v1)

Model `embed-test` is routed to an OpenAI-format mock's embeddings: a batch of two texts in the
SDK's default encoding (it asks for base64 and decodes it) and one as plain floats. Model
`claude-test` is routed to an Anthropic-format mock: one `responses.create` and one
`stream=True`, both cut at 4 tokens. Model `tools-test` is routed to a mock that always calls
a tool: one `responses.create` and one run of the stream helper (`responses.stream`, which
checks each event against the items it announced), both offered one function. Prints one JSON
line for the Rust test to judge; exits non-zero if the `openai` package is missing.
"""

import json
import math
import sys

try:
    import openai
except ImportError:
    sys.exit("the `openai` Python package is missing: pip install openai")

KEY = "sk-sdk-test"
TOOLS = [
    {
        "type": "function",
        "name": "lookup",
        "description": "Look a word up",
        "parameters": {
            "type": "object",
            "required": ["q"],
            "properties": {"q": {"type": "string"}},
        },
    }
]


def norm(v):
    return math.sqrt(sum(x * x for x in v))


def calls(response):
    return [
        {"name": item.name, "call_id": item.call_id, "arguments": json.loads(item.arguments)}
        for item in response.output
        if item.type == "function_call"
    ]


def usage(u):
    return {
        "input_tokens": u.input_tokens,
        "output_tokens": u.output_tokens,
        "total_tokens": u.total_tokens,
    }


def main(url: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=30)

    plain = client.responses.create(model="claude-test", input="Say hello", max_output_tokens=4)
    events, deltas, final = [], [], None
    for event in client.responses.create(
        model="claude-test", input="Say hello", max_output_tokens=4, stream=True
    ):
        events.append({"type": event.type, "sequence_number": event.sequence_number})
        if event.type == "response.output_text.delta":
            deltas.append(event.delta)
        if event.type in ("response.completed", "response.incomplete"):
            final = event.response

    batch = client.embeddings.create(model="embed-test", input=["the quick brown fox", "jumps"])
    floats = client.embeddings.create(
        model="embed-test", input="the quick brown fox", encoding_format="float"
    )

    called = client.responses.create(model="tools-test", input="Look up 'gauntlet'", tools=TOOLS)
    types = []
    with client.responses.stream(
        model="tools-test", input="Look up 'gauntlet'", tools=TOOLS
    ) as stream:
        for event in stream:
            types.append(event.type)
        streamed = stream.get_final_response()

    print(
        json.dumps(
            {
                "sdk_version": openai.__version__,
                "claude": {
                    "plain": {
                        "status": plain.status,
                        "reason": plain.incomplete_details.reason,
                        "text": plain.output_text,
                        "usage": usage(plain.usage),
                    },
                    "stream": {
                        "events": events,
                        "text": "".join(deltas),
                        "final_status": final.status,
                        "final_text": final.output_text,
                        "usage": usage(final.usage),
                    },
                },
                "embeddings": {
                    "object": batch.object,
                    "model": batch.model,
                    "indices": [d.index for d in batch.data],
                    "lengths": [len(d.embedding) for d in batch.data],
                    "norms": [norm(d.embedding) for d in batch.data],
                    "prompt_tokens": batch.usage.prompt_tokens,
                    "float_length": len(floats.data[0].embedding),
                    "same_as_base64": max(
                        abs(x - y) for x, y in zip(floats.data[0].embedding, batch.data[0].embedding)
                    ),
                },
                "tools": {
                    "status": called.status,
                    "calls": calls(called),
                    "usage_output": called.usage.output_tokens,
                },
                "tools_stream": {
                    "types": types,
                    "status": streamed.status,
                    "calls": calls(streamed),
                },
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: sdk_openai_gateway_apis.py GATEWAY_URL")
    main(sys.argv[1])
