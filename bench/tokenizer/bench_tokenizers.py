#!/usr/bin/env python3
"""Encode throughput of the Hugging Face `tokenizers` library (Rust, one thread) on the same
documents and the same measurement as `lmw bench-tokenizer`; token count and checksum must match.

    python3 bench/tokenizer/bench_tokenizers.py MODEL_DIR TEXT [--passes 5]

Runs where `pip install tokenizers` is done (the GPU machine has it).
"""
import argparse
import os
import time

os.environ.setdefault("RAYON_NUM_THREADS", "1")  # encode() is single-threaded; keep the pool quiet too
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import tokenizers  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("model_dir")
    ap.add_argument("text")
    ap.add_argument("--passes", type=int, default=5)
    args = ap.parse_args()

    with open(args.text, "rb") as f:
        raw = f.read()
    text = raw.decode("utf-8")
    docs, start = [], 0
    while start < len(text):
        at = text.find("\n\n", start)
        end = len(text) if at < 0 else at + 2
        docs.append(text[start:end])
        start = end

    t0 = time.perf_counter()
    tok = tokenizers.Tokenizer.from_file(os.path.join(args.model_dir, "tokenizer.json"))
    load_s = time.perf_counter() - t0

    seconds, out = [], []
    for _ in range(args.passes):
        start = time.perf_counter()
        out = [tok.encode(d, add_special_tokens=False).ids for d in docs]
        seconds.append(time.perf_counter() - start)

    tokens, h = 0, 0
    for ids in out:
        tokens += len(ids)
        for i in ids:
            h = (h * 31 + i + 1) & 0xFFFFFFFF
    mb = len(raw) / 1e6
    best = min(seconds)
    print(f"tokenizers {tokenizers.__version__} {args.model_dir}: loaded in {load_s:.2f} s")
    print(f"  text {mb:.2f} MB in {len(docs)} documents -> {tokens} tokens, checksum {h:08x}")
    print(f"  encode, 1 thread: {mb / seconds[0]:.2f} MB/s first pass, {mb / best:.2f} MB/s best of {args.passes} "
          f"({tokens / best:.0f} tokens/s)")


if __name__ == "__main__":
    main()
