"""The OpenAI Python SDK against a gauntlet mock whose key allows 40 requests a minute.

Usage: python3 sdk_retry.py BASE_URL (e.g. http://127.0.0.1:PORT/v1)

Drains the key's request budget with a client that never retries, until the first 429;
then asks once with the SDK's default retries. The mock refuses that first attempt with
`retry-after-ms` (about 1.5 s) and can only serve the retry once that wait has passed, so
two requests and a success mean the SDK read the header and waited as told. Prints one JSON
line for the Rust test to judge; exits non-zero (loudly) if the `openai` package is missing.
"""

import json
import sys
import time

try:
    import openai
except ImportError:
    sys.exit("the `openai` Python package is missing: pip install openai")

MESSAGES = [{"role": "user", "content": "Say hello"}]
KEY = "sk-sdk-retry"


def main(base_url: str) -> None:
    probe = openai.OpenAI(base_url=base_url, api_key=KEY, max_retries=0, timeout=30)
    drained = 0
    while True:
        try:
            probe.chat.completions.create(model="m", messages=MESSAGES, max_tokens=3)
        except openai.RateLimitError as refused:
            headers = refused.response.headers
            break
        drained += 1
        if drained > 1000:
            sys.exit("the mock never refused: is its requests_per_minute set?")
    refused_at = time.monotonic()

    client = openai.OpenAI(base_url=base_url, api_key=KEY, timeout=30)
    raw = client.chat.completions.with_raw_response.create(
        model="m", messages=MESSAGES, max_tokens=3
    )
    served_after = time.monotonic() - refused_at
    completion = raw.parse()
    print(
        json.dumps(
            {
                "sdk_version": openai.__version__,
                "drained": drained,
                "retry_after_ms": headers.get("retry-after-ms"),
                "retry_after": headers.get("retry-after"),
                "reset_requests": headers.get("x-ratelimit-reset-requests"),
                "retries_taken": raw.retries_taken,
                "served_after_s": served_after,
                "content": completion.choices[0].message.content,
            }
        )
    )


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: sdk_retry.py BASE_URL")
    main(sys.argv[1])
