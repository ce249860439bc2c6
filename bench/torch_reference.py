"""PyTorch / transformers reference numbers for `lmw bench` on the same GPU, in the same run.

Builds a Llama-2-7B-shaped LlamaForCausalLM with random f16 weights and the vocabulary size given,
and times greedy decoding at batch 1 (tokens/s) and a batch of concurrent sequences (output tokens/s)
with Hugging Face generate. Usage: python3 torch_reference.py [--vocab 512] [--batch 16]
"""
import argparse
import time

import torch
from transformers import LlamaConfig, LlamaForCausalLM


def timed_generate(model, ids, new_tokens):
    torch.cuda.synchronize()
    t = time.perf_counter()
    model.generate(ids, max_new_tokens=new_tokens, min_new_tokens=new_tokens, do_sample=False)
    torch.cuda.synchronize()
    return time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--vocab", type=int, default=512)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--prompt-len", type=int, default=32)
    ap.add_argument("--tokens", type=int, default=128)
    a = ap.parse_args()
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                      num_key_value_heads=32, vocab_size=a.vocab, max_position_embeddings=4096,
                      bos_token_id=1, eos_token_id=2, pad_token_id=0)
    torch.manual_seed(0)
    with torch.device("cuda"):
        model = LlamaForCausalLM(cfg).half().eval()
    ids = torch.randint(3, a.vocab, (1, a.prompt_len), device="cuda")
    timed_generate(model, ids, 8)  # warm-up
    t1 = timed_generate(model, ids, 1)
    tn = timed_generate(model, ids, a.tokens)
    print(f"pytorch {torch.__version__} transformers generate, 7B-shaped f16: decode batch 1: "
          f"{(a.tokens - 1) / (tn - t1):.1f} tok/s")
    ids = torch.randint(3, a.vocab, (a.batch, a.prompt_len), device="cuda")
    tb = timed_generate(model, ids, a.tokens)
    print(f"pytorch transformers generate, batch {a.batch}: {a.batch * a.tokens / tb:.1f} output tok/s "
          f"(prompt {a.prompt_len}, output {a.tokens})")


if __name__ == "__main__":
    main()
