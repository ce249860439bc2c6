# Which transformers setup reproduces reference.json's logits for the tiny tokenizer.json models?
# Runs the reference prompts under several setups (dtype, device, config variants) and prints the max
# relative error of the top-64 last-token logits and the logsumexp error against reference.json.
#   python3 bench/hf_reference_probe.py MODELS_DIR
import json, sys
import torch
from transformers import AutoConfig, AutoModelForCausalLM

models_dir = sys.argv[1]


def load(d, dtype=torch.float32, device="cpu", **overrides):
    cfg = AutoConfig.from_pretrained(d)
    for k, v in overrides.items():
        setattr(cfg, k, v)
    return AutoModelForCausalLM.from_pretrained(d, config=cfg, dtype=dtype).to(device).eval()


setups = {
    "f32 cpu": dict(),
    "f32 cuda": dict(device="cuda"),
    "bf16 cpu": dict(dtype=torch.bfloat16),
    "bf16 cuda": dict(dtype=torch.bfloat16, device="cuda"),
    "f16 cuda": dict(dtype=torch.float16, device="cuda"),
    "f32 eager": dict(attn_implementation="eager"),
    "f32 eps 1e-6": dict(rms_norm_eps=1e-6),
    "f32 eps 1e-5": dict(rms_norm_eps=1e-5),
}
for name in ["qwen3-tiny", "llama3-tiny"]:
    d = models_dir + "/" + name
    ref = json.load(open(d + "/reference.json"))
    for label, kw in setups.items():
        kw = dict(kw)
        attn = kw.pop("attn_implementation", None)
        try:
            m = load(d, **kw) if attn is None else AutoModelForCausalLM.from_pretrained(
                d, dtype=torch.float32, attn_implementation=attn).eval()
        except Exception as e:
            print(f"{name:12s} {label:16s} failed: {e}")
            continue
        dev = next(m.parameters()).device
        worst, lse = 0.0, 0.0
        for c in ref["cases"]:
            with torch.no_grad():
                l = m(torch.tensor([c["input_ids"]], device=dev)).logits[0, -1].double().cpu()
            want = torch.tensor(c["top64_logits"], dtype=torch.float64)
            got = l[torch.tensor(c["top64_ids"])]
            worst = max(worst, float(((got - want).abs() / want.abs().clamp(min=1e-6)).max()))
            lse = max(lse, abs(float(torch.logsumexp(l, 0)) - c["logsumexp"]))
        print(f"{name:12s} {label:16s} top64 max rel err {worst:.2e}  logsumexp max err {lse:.2e}", flush=True)
