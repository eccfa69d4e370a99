"""Decoding speed with and without the KV cache on a trained model (greedy, same output).

Usage: .venv/bin/python benchmarks/generate_bench.py --model RUN/finetune [--new 96] [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from pipeline.model import load_model
from pipeline.model.generate import generate


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", required=True, help="directory with model.safetensors")
    parser.add_argument("--prompt-tokens", type=int, default=24)
    parser.add_argument("--new", type=int, default=96)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: one request)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model(args.model).eval()
    prompt = list(range(10, 10 + args.prompt_tokens))
    outputs, rates = {}, {}
    for use_cache in (True, False):
        times = []
        for _ in range(args.repeat):
            t0 = time.perf_counter()
            out = generate(model, prompt, max_new_tokens=args.new, eos_ids=(), use_cache=use_cache)
            times.append(time.perf_counter() - t0)
        outputs[use_cache], rates[use_cache] = out, len(out) / statistics.median(times)
    assert outputs[True] == outputs[False], "the KV cache changed the greedy output"
    print(f"{args.new} new tokens after {args.prompt_tokens}, median of {args.repeat}:")
    print(f"  KV cache    {rates[True]:8.1f} tokens/s")
    print(f"  no cache    {rates[False]:8.1f} tokens/s  (x{rates[True] / rates[False]:.2f})")


if __name__ == "__main__":
    main()
