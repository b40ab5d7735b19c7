#!/usr/bin/env python3
"""Writes peak-hour.jsonl: a recorded peak hour's shape compressed to 20 s, for
scenarios/trace-replay.toml. Deterministic (seed below): rerun it and the file is identical.

    python3 scenarios/traces/peak_hour.py > scenarios/traces/peak-hour.jsonl

Shape: a morning ramp from ~30 to ~140 requests/s peaking at 11 s and easing off, plus two
bursts (a batch job firing 40 requests within 300 ms) at 6 s and 15 s. Lines are the format
`[load] trace` reads: epoch `timestamp` in seconds, `model` as a gateway log records it (the
premium lines name their `class` instead), `prompt_tokens`, `output_tokens`.
"""

import json
import math
import random

SEED = 20261129
START = 1764486000.0  # 2025-11-30 07:00:00 UTC, when the recorded hour began
SPAN = 20.0
PEAK = 140.0

# model (or class for premium), share, prompt median, output median
MIX = [
    ("deepseek-v4-flash", 0.80, 300, 80),
    ("qwen3-32b", 0.15, 900, 60),
    ("premium", 0.05, 2000, 150),
]


def rate(t):
    return 30.0 + (PEAK - 30.0) * math.exp(-(((t - 11.0) / 5.0) ** 2))


def lognormal(rng, median, sigma, lo, hi):
    return max(lo, min(hi, int(round(median * math.exp(rng.gauss(0.0, sigma))))))


def line(rng, t):
    r = rng.random()
    for name, share, prompt, output in MIX:
        if r < share or name == MIX[-1][0]:
            break
        r -= share
    rec = {"timestamp": round(START + t, 3)}
    if name == "premium":
        rec["class"] = name
    else:
        rec["model"] = name
    rec["prompt_tokens"] = lognormal(rng, prompt, 0.8, 5, 16000)
    rec["output_tokens"] = lognormal(rng, output, 0.6, 1, 400)
    return rec


def main():
    rng = random.Random(SEED)
    times = []
    # Thinning: Poisson at the peak rate, each send kept with probability rate(t) / peak.
    t = rng.expovariate(PEAK)
    while t < SPAN:
        if rng.random() < rate(t) / PEAK:
            times.append(t)
        t += rng.expovariate(PEAK)
    for burst in (6.0, 15.0):
        times.extend(burst + rng.uniform(0.0, 0.3) for _ in range(40))
    times.sort()
    for t in times:
        print(json.dumps(line(rng, t)))


if __name__ == "__main__":
    main()
