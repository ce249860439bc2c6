"""Ours vs the PyTorch peer for issue 11, from the files bench/gpu_run.sh writes.

    python3 decode_table.py BENCH_OUTPUT.txt... PEER_OUTPUT.json...

BENCH_OUTPUT: `lmw bench` output (its decode rows: model dtype batch context tok/s ms/step GB/step
GB/s %read host-ms ttft). PEER_OUTPUT: torch_compile_decode.py's JSON ({bf16,f16,int4}_batch{B}_tok_s).
Prints one table (the peer's figure next to ours at context 512, where it ran) and the targets of
the issue's "Done when" that these numbers decide.
"""
import json, re, sys

ours, peer, read = {}, {}, {}
for path in sys.argv[1:]:
    try:
        text = open(path).read()
    except OSError as e:
        print(f"{path}: {e.strerror}")
        continue
    if path.endswith(".json"):
        try:
            d = json.loads(text)
        except ValueError:
            print(f"{path}: no JSON (the peer failed or timed out)")
            continue
        for k, v in d.items():
            m = re.fullmatch(r"(bf16|f16|int4)_batch(\d+)_tok_s", k)
            if m:
                peer[(m[1], int(m[2]))] = v
        if "int4_error" in d:
            print(f"{path}: int4_error {d['int4_error']}")
        continue
    for line in text.splitlines():
        m = re.search(r"device read bandwidth[^:]*: (\d+) GB/s", line)
        if m:
            read[path] = float(m[1])
        f = line.split()
        if len(f) == 11 and f[2].isdigit() and f[3].isdigit():
            dtype = {"F16": "f16", "BF16": "bf16", "AWQ-INT4": "int4"}.get(f[1], f[1].lower())
            ours[(dtype, int(f[2]), int(f[3]))] = dict(tok=float(f[4]), ms=float(f[5]), gb=float(f[6]), pct=float(f[8]), host=float(f[9]))

print("read bandwidth (GB/s): " + ", ".join(f"{p.rsplit('/', 1)[-1]} {v:.0f}" for p, v in read.items()))
print(f"{'dtype':6} {'batch':>5} {'context':>7} {'tok/s':>9} {'ms/step':>8} {'GB/step':>8} {'% read':>7} {'host ms':>8} {'peer tok/s':>11} {'ours/peer':>9}")
for (dtype, b, ctx), r in sorted(ours.items(), key=lambda kv: (kv[0][2], kv[0][0], kv[0][1])):
    p = peer.get((dtype, b)) if ctx == 512 else None
    ps = f"{p:11.1f} {r['tok'] / p:8.2f}x" if p else f"{'-':>11} {'-':>9}"
    print(f"{dtype:6} {b:5d} {ctx:7d} {r['tok']:9.1f} {r['ms']:8.3f} {r['gb']:8.3f} {r['pct']:7.1f} {r['host']:8.3f} {ps}")


def check(name, value, target, unit):
    if value is None:
        print(f"  n/a   {name}: not measured")
    else:
        print(f"  {'PASS' if value >= target else 'FAIL'}  {name}: {value:.2f}{unit} (target >= {target}{unit})")


def get(dtype, b, ctx=512, key="tok"):
    r = ours.get((dtype, b, ctx))
    return r[key] if r else None


def ratio(a, b):
    return a / b if a is not None and b else None


print("targets (issue 11, context 512 unless said):")
for dt in ("bf16", "f16"):
    check(f"{dt} batch 1 % of read roofline", get(dt, 1, key="pct"), 90, "%")
check("int4 batch 1 % of read roofline", get("int4", 1, key="pct"), 80, "%")
check("int4 batch 1 / bf16 batch 1", ratio(get("int4", 1), get("bf16", 1)), 3.5, "x")
check("bf16 batch 16 / batch 1", ratio(get("bf16", 16), get("bf16", 1)), 12, "x")
check("int4 batch 16 / batch 1", ratio(get("int4", 16), get("int4", 1)), 8, "x")
for dt, t in (("bf16", 1.5), ("f16", 1.5), ("int4", 3.5)):
    check(f"{dt} batch 1 / peer", ratio(get(dt, 1), peer.get((dt, 1))), t, "x")
for dt in ("bf16", "f16", "int4"):
    check(f"{dt} batch 1 at context 8192, % of roofline", get(dt, 1, 8192, "pct"), 80, "%")
