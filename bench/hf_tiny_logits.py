# Hugging Face transformers' own outputs for the tiny tokenizer.json test models, from the folders as
# they are (bf16 weights read as float64, on the CPU): tests/data/hf_tiny_logits.json.
#   python3 bench/hf_tiny_logits.py MODELS_DIR OUT.json
# Written because reference.json's logits in those folders are not what transformers 5.17 computes
# from them (see tests/data/README.md); the prompts are reference.json's input ids.
import json, sys
import torch, transformers
from transformers import AutoModelForCausalLM

models_dir, out_path = sys.argv[1], sys.argv[2]
out = {"made_with": "transformers %s, torch %s, float64 on the CPU" % (transformers.__version__, torch.__version__),
       "models": {}}
for name in ["qwen3-tiny", "llama3-tiny"]:
    d = models_dir + "/" + name
    ref = json.load(open(d + "/reference.json"))
    m = AutoModelForCausalLM.from_pretrained(d, dtype=torch.float64).eval()
    cases = []
    for c in ref["cases"]:
        ids = list(c["input_ids"])
        greedy, margins = [], []
        with torch.no_grad():
            first = None
            for _ in range(24):  # no cache: every step is one plain forward over the whole sequence
                l = m(torch.tensor([ids])).logits[0, -1]
                if first is None:
                    first = l
                top = torch.topk(l, 2)
                greedy.append(int(top.indices[0]))
                margins.append(float(top.values[0] - top.values[1]))
                ids.append(greedy[-1])
        top64 = torch.topk(first, 64)
        cases.append({"input_ids": c["input_ids"], "top64_ids": top64.indices.tolist(),
                      "top64_logits": top64.values.tolist(), "logsumexp": float(torch.logsumexp(first, 0)),
                      "greedy_ids": greedy, "greedy_margins": margins})
        print(name, len(c["input_ids"]), "greedy equal to reference.json for",
              next((i for i, (a, b) in enumerate(zip(greedy, c["greedy_ids"])) if a != b), 24), "of 24",
              "min margin %.2e" % min(margins), flush=True)
    out["models"][name] = {"cases": cases}
json.dump(out, open(out_path, "w"), indent=1)
