#!/usr/bin/env bash
# Tokenizer encode throughput, one thread, on one mixed text: `lmw bench-tokenizer`, then the Hugging
# Face `tokenizers` library (Python, where installed) and @huggingface/transformers (Node, where
# `npm install` was run here), each on the same documents. Token counts and checksums must agree.
#
#   bench/tokenizer/compare.sh MODEL_DIR...            (LMW=path/to/lmw, default build/app/lmw)
#   LMW="./run.sh ./lmw" ../../bench/tokenizer/compare.sh models/qwen3-tiny   (in a gpu_bundle.sh folder)
#
# TEXT=file uses a text of your own; otherwise make_text.py writes the 2 MB mixed one (seed 1).
set -u
here="$(cd "$(dirname "$0")" && pwd)"
lmw="${LMW:-$here/../../build/app/lmw}"
text="${TEXT:-}"
if [ -z "$text" ]; then
    text="$(mktemp --suffix=.txt)"
    trap 'rm -f "$text"' EXIT
    python3 "$here/make_text.py" "$text"
fi
echo "text: $text ($(wc -c <"$text") bytes, md5 $(md5sum "$text" | cut -d' ' -f1))"
grep -m1 'model name' /proc/cpuinfo
for model in "$@"; do
    echo "== $model"
    $lmw bench-tokenizer "$model" --text "$text"
    if python3 -c "import tokenizers" 2>/dev/null; then
        python3 "$here/bench_tokenizers.py" "$model" "$text"
    fi
    if [ -d "$here/node_modules/@huggingface/transformers" ]; then
        node "$here/bench_transformers_js.mjs" "$model" "$text" 3
    fi
done
