# Which transformers setup reproduces reference.json's logits for the tiny tokenizer.json models?
# Tries several (dtype path, device, attention) and prints the max relative error of the top-64
# last-token logits and the logsumexp error against reference.json for each case.
#   python3 bench/hf_reference_probe.py MODELS_DIR
import json, sys
import torch
from transformers import AutoModelForCausalLM

models_dir = sys.argv[1]
setups = {
    "f32 load": lambda d: AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32),
    "bf16 load then .float()": lambda d: AutoModelForCausalLM.from_pretrained(d, dtype=torch.bfloat16).float(),
    "f32 load, sdpa cuda tf32": lambda d: AutoModelForCausalLM.from_pretrained(d, dtype=torch.float32).cuda(),
}
for name in ["qwen3-tiny", "llama3-tiny"]:
    d = models_dir + "/" + name
    ref = json.load(open(d + "/reference.json"))
    for label, make in setups.items():
        tf32 = "tf32" in label
        torch.backends.cuda.matmul.allow_tf32 = tf32
        torch.backends.cudnn.allow_tf32 = tf32
        m = make(d).eval()
        dev = next(m.parameters()).device
        worst, lse = 0.0, 0.0
        for c in ref["cases"]:
            with torch.no_grad():
                l = m(torch.tensor([c["input_ids"]], device=dev)).logits[0, -1].double().cpu()
            want = torch.tensor(c["top64_logits"], dtype=torch.float64)
            got = l[torch.tensor(c["top64_ids"])]
            worst = max(worst, float(((got - want).abs() / want.abs().clamp(min=1e-6)).max()))
            lse = max(lse, abs(float(torch.logsumexp(l, 0)) - c["logsumexp"]))
        print(f"{name:12s} {label:28s} top64 max rel err {worst:.2e}  logsumexp max err {lse:.2e}", flush=True)
