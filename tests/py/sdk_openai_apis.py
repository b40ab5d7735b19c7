"""The openai Python SDK against a gauntlet mock's legacy completions and embeddings APIs.

Usage: python3 sdk_openai_apis.py MOCK_URL (base URL without /v1)

Text completions: one plain call, one without max_tokens (the API's default of 16), a batch of
two prompts, and one stream with usage. Embeddings: a batch of three texts in the SDK's default
encoding (it asks for base64 and decodes it), one shortened with `dimensions`, one as plain
floats. Everything is read with the SDK's own parsers; the vectors are judged here (norms,
equality) so the report stays small. Prints one JSON line for the Rust test to judge; exits
non-zero if the `openai` package is missing.
"""

import json
import math
import sys

try:
    import openai
except ImportError:
    sys.exit("the `openai` Python package is missing: pip install openai")

KEY = "sk-sdk-test"


def norm(v):
    return math.sqrt(sum(x * x for x in v))


def max_diff(a, b):
    return max((abs(x - y) for x, y in zip(a, b)), default=0.0)


def main(url: str) -> None:
    client = openai.OpenAI(base_url=f"{url}/v1", api_key=KEY, max_retries=0, timeout=30)

    plain = client.completions.create(model="text-test", prompt="Say hello", max_tokens=7)
    default = client.completions.create(model="text-test", prompt="Say hello")
    batch = client.completions.create(
        model="text-test", prompt=["Say hello", "Say goodbye"], max_tokens=3
    )

    chunks = []
    usage = None
    for chunk in client.completions.create(
        model="text-test",
        prompt="Say hello",
        max_tokens=5,
        stream=True,
        stream_options={"include_usage": True},
    ):
        if chunk.usage is not None:
            usage = chunk.usage
        for c in chunk.choices:
            chunks.append({"text": c.text, "index": c.index, "finish_reason": c.finish_reason})

    texts = ["the quick brown fox", "jumps over", "the quick brown fox"]
    b64 = client.embeddings.create(model="embed-test", input=texts)
    short = client.embeddings.create(model="embed-test", input=texts[0], dimensions=256)
    floats = client.embeddings.create(
        model="embed-test", input=texts[0], encoding_format="float"
    )
    full = b64.data[0].embedding
    head = full[:256]
    head_norm = norm(head)

    print(
        json.dumps(
            {
                "sdk_version": openai.__version__,
                "plain": {
                    "id": plain.id,
                    "object": plain.object,
                    "text": plain.choices[0].text,
                    "finish_reason": plain.choices[0].finish_reason,
                    "prompt_tokens": plain.usage.prompt_tokens,
                    "completion_tokens": plain.usage.completion_tokens,
                },
                "default": {
                    "text": default.choices[0].text,
                    "finish_reason": default.choices[0].finish_reason,
                    "completion_tokens": default.usage.completion_tokens,
                },
                "batch": {
                    "indices": [c.index for c in batch.choices],
                    "texts": [c.text for c in batch.choices],
                    "completion_tokens": batch.usage.completion_tokens,
                },
                "stream": {
                    "chunks": chunks,
                    "usage": None
                    if usage is None
                    else {
                        "prompt_tokens": usage.prompt_tokens,
                        "completion_tokens": usage.completion_tokens,
                        "total_tokens": usage.total_tokens,
                    },
                },
                "embeddings": {
                    "object": b64.object,
                    "model": b64.model,
                    "indices": [d.index for d in b64.data],
                    "lengths": [len(d.embedding) for d in b64.data],
                    "norms": [norm(d.embedding) for d in b64.data],
                    "same_input_same_vector": b64.data[0].embedding == b64.data[2].embedding,
                    "other_input_differs": b64.data[0].embedding != b64.data[1].embedding,
                    "prompt_tokens": b64.usage.prompt_tokens,
                    "total_tokens": b64.usage.total_tokens,
                    "short_length": len(short.data[0].embedding),
                    "short_norm": norm(short.data[0].embedding),
                    "short_is_cut_full": max_diff(
                        short.data[0].embedding, [x / head_norm for x in head]
                    ),
                    "float_length": len(floats.data[0].embedding),
                    "float_vs_base64": max_diff(floats.data[0].embedding, full),
                },
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: sdk_openai_apis.py MOCK_URL")
    main(sys.argv[1])
