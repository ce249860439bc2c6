#!/usr/bin/env python3
"""Time per kernel of one replayed decode step, from a bench/cupti_trace.cpp CSV.

    trace_summary.py trace.csv [--top 30]

Takes the CUDA graph replayed most often (the decode step of the last bench row), splits its records
into replays (each replay runs every node once), and prints per kernel name: launches per step, the
median time it adds to the step's critical path (its end minus the end of the kernel that ended
before it: kernels overlap under programmatic dependent launch, so durations double count) and its
median duration. The step span is first start to last end of a replay."""
import argparse
import collections
import csv
import re
import statistics


def short(name):
    """The kernel's own name from an Itanium-mangled one (_ZN3lmw7kernels...12fooKernelI...E...)."""
    if not name.startswith("_ZN"):
        return name[:44]
    i, last = 3, name
    while i < len(name) and name[i].isdigit():
        j = i
        while name[j].isdigit():
            j += 1
        n = int(name[i:j])
        last = name[j:j + n]
        i = j + n
    return last


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("csv")
    ap.add_argument("--top", type=int, default=40)
    a = ap.parse_args()
    rows = []
    with open(a.csv) as f:
        for r in csv.reader(f):
            if len(r) < 6:
                continue
            rows.append((int(r[0]), int(r[1]), int(r[2]), int(r[3]), ",".join(r[5:])))
    by_graph = collections.defaultdict(list)
    for r in rows:
        if r[2]:
            by_graph[r[2]].append(r)
    if not by_graph:
        print("no graph-launched kernels in the trace")
        return
    gid, recs = max(by_graph.items(), key=lambda kv: len(kv[1]))
    nodes = len({r[3] for r in recs})
    recs.sort()
    replays = [recs[i:i + nodes] for i in range(0, len(recs) - nodes + 1, nodes)]
    replays = replays[1:] if len(replays) > 2 else replays  # the first may be cold
    spans, per = [], collections.defaultdict(lambda: {"n": 0, "exposed": [], "dur": []})
    for rep in replays:
        rep = sorted(rep, key=lambda r: r[1])
        spans.append(rep[-1][1] - min(r[0] for r in rep))
        step = collections.defaultdict(lambda: [0, 0, 0])
        prev_end = min(r[0] for r in rep)
        for s, e, _, _, name in rep:
            k = short(name)
            step[k][0] += 1
            step[k][1] += max(0, e - prev_end)
            step[k][2] += e - s
            prev_end = max(prev_end, e)
        for k, (n, ex, du) in step.items():
            per[k]["n"] = n
            per[k]["exposed"].append(ex)
            per[k]["dur"].append(du)
    span = statistics.median(spans)
    print(f"graph {gid}: {nodes} kernels per replay, {len(replays)} replays, step span median {span / 1e3:.1f} us")
    print(f"{'kernel':44} {'n/step':>6} {'exposed us/step':>15} {'us each':>8} {'%':>5} {'dur us each':>11}")
    items = sorted(per.items(), key=lambda kv: -statistics.median(kv[1]["exposed"]))
    for k, v in items[: a.top]:
        ex = statistics.median(v["exposed"])
        du = statistics.median(v["dur"])
        print(f"{k[:44]:44} {v['n']:6d} {ex / 1e3:15.1f} {ex / 1e3 / v['n']:8.2f} {100 * ex / span:5.1f} {du / 1e3 / v['n']:11.2f}")


if __name__ == "__main__":
    main()
