"""The OpenAI Python SDK reads a gauntlet mock's tool calls and reasoning.

Usage: python3 sdk_tools.py BASE_URL (e.g. http://127.0.0.1:PORT/v1)

The mock's profile thinks a few tokens first and always answers a request with tools by a
tool call. Three requests: a stream read chunk by chunk (arguments accumulated by hand, the
order of reasoning and tool-call deltas recorded), the same stream through the SDK's own
accumulator (`chat.completions.stream(...).get_final_completion()`), and a plain answer.
Prints one JSON line for the Rust test to judge; exits non-zero if `openai` is missing.
"""

import json
import sys

try:
    import openai
except ImportError:
    sys.exit("the `openai` Python package is missing: pip install openai")

MESSAGES = [{"role": "user", "content": "What is the weather in Lisbon?"}]
TOOLS = [
    {
        "type": "function",
        "function": {
            "name": "get_weather",
            "description": "Current weather for a city",
            "parameters": {
                "type": "object",
                "properties": {
                    "city": {"type": "string"},
                    "days": {"type": "integer", "minimum": 1, "maximum": 7},
                    "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
                },
                "required": ["city", "days", "unit"],
                "additionalProperties": False,
            },
        },
    }
]


def by_hand(client: "openai.OpenAI") -> dict:
    stream = client.chat.completions.create(
        model="m",
        messages=MESSAGES,
        tools=TOOLS,
        stream=True,
        stream_options={"include_usage": True},
    )
    order, calls, finish, usage = [], {}, None, None
    for chunk in stream:
        if chunk.usage is not None:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            delta = choice.delta
            # reasoning_content is not in the SDK's model; pydantic keeps it as an extra.
            extra = delta.model_extra or {}
            if extra.get("reasoning_content"):
                order.append("reasoning")
            if delta.content:
                order.append("content")
            for call in delta.tool_calls or []:
                order.append("tool_call")
                acc = calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
                if call.id:
                    acc["id"] = call.id
                if call.function and call.function.name:
                    acc["name"] = call.function.name
                if call.function and call.function.arguments:
                    acc["arguments"] += call.function.arguments
            if choice.finish_reason:
                finish = choice.finish_reason
    return {"order": order, "calls": list(calls.values()), "finish": finish, "usage": usage}


def with_sdk_accumulator(client: "openai.OpenAI") -> dict:
    helper = getattr(client.chat.completions, "stream", None)
    if helper is None:
        helper = client.beta.chat.completions.stream
    with helper(model="m", messages=MESSAGES, tools=TOOLS) as stream:
        final = stream.get_final_completion()
    choice = final.choices[0]
    return {
        "finish": choice.finish_reason,
        "calls": [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in choice.message.tool_calls or []
        ],
    }


def plain(client: "openai.OpenAI") -> dict:
    answer = client.chat.completions.create(model="m", messages=MESSAGES, tools=TOOLS)
    choice = answer.choices[0]
    return {
        "finish": choice.finish_reason,
        "content": choice.message.content,
        "calls": [
            {"id": c.id, "name": c.function.name, "arguments": c.function.arguments}
            for c in choice.message.tool_calls or []
        ],
        "usage": answer.usage.model_dump(),
    }


def main(base_url: str) -> None:
    client = openai.OpenAI(base_url=base_url, api_key="sk-tools", max_retries=0, timeout=30)
    report = {
        "sdk_version": openai.__version__,
        "stream": by_hand(client),
        "accumulated": with_sdk_accumulator(client),
        "plain": plain(client),
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
