#!/usr/bin/env python3
"""Per-layer A/B of compiled modules on a noisy machine: which layers did a schedule change speed up?

Runs `qnnc bench --profile` on each module in alternating, shuffled rounds (seeded). In each round,
each layer's time in module B is divided by its time in module A (the first module), then scaled
by the ratio of the two modules' sums over the *reference* layers: those whose kernels are the same
function in every module (graph.json's `fn`; optionally excluding layers whose description
contains --changed, for when the kernel code changed under the same knobs). A host-wide slowdown
during one module's run (a busy neighbour, a frequency drop) moves its reference layers as much as
its changed ones, so it cancels. The table gives each changed layer's best time per module and the
median over rounds of its scaled ratio (< 1: faster than module A), then the whole model's.

    build/qnnc compile model.onnx -o /tmp/a --knob conv2d.pixel_row=0
    build/qnnc compile model.onnx -o /tmp/b
    .venv/bin/python bench/compare_layers.py /tmp/a /tmp/b --rounds 6 --threads 1

Modules must come from the same model (layers are matched by node name). Minima alone are kept in
the table for reference; on a machine whose unchanged kernels move 30% from run to run they
mislead, which is why the ratios are scaled.
"""
from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile

import common


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("modules", nargs="+", help="module directories; the first is the baseline (A)")
    p.add_argument("--qnnc", default=str(common.REPO_ROOT / "build" / "qnnc"), help="qnnc binary")
    p.add_argument("--rounds", type=int, default=6, help="alternating rounds (default: %(default)s)")
    p.add_argument("--threads", type=int, default=1, help="threads (default: %(default)s)")
    p.add_argument("--repeat", type=int, default=10, help="runs per profile (default: %(default)s)")
    p.add_argument("--seed", type=int, default=0, help="seed of the round order (default: %(default)s)")
    p.add_argument("--changed", default=None,
                   help="treat layers whose kernel description contains this text as changed even where "
                        "their function names agree (kernel code changed under the same knobs)")
    p.add_argument("--min-ms", type=float, default=0.05, help="hide layers faster than this (default: %(default)s)")
    args = p.parse_args(argv)
    if len(args.modules) < 2:
        p.error("give at least two modules")
    return args


def step_functions(module: str) -> dict[str, str]:
    """Node name -> kernel function name, from the module's graph.json."""
    with open(os.path.join(module, "graph.json")) as f:
        return {s["name"]: s.get("fn", "") for s in json.load(f)["steps"]}


def profile(qnnc: str, module: str, threads: int, repeat: int, out: str) -> list[dict]:
    cmd = [qnnc, "bench", module, "--threads", str(threads), "--repeat", str(repeat), "--profile",
           "--profile-json", out]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        sys.exit(f"compare_layers: `{' '.join(cmd)}` failed:\n{r.stderr}")
    with open(out) as f:
        return json.load(f)["rows"]


def main(argv=None) -> int:
    args = parse_args(argv)
    mods = args.modules
    fns = {m: step_functions(m) for m in mods}
    rng = random.Random(args.seed)
    times: dict[str, list[dict[str, float]]] = {m: [] for m in mods}
    desc: dict[str, str] = {}
    order_names: list[str] = []
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.rounds):
            order = mods[:]
            rng.shuffle(order)
            for m in order:
                rows = profile(args.qnnc, m, args.threads, args.repeat, os.path.join(tmp, "p.json"))
                times[m].append({row["name"]: row["ms"] for row in rows})
                for row in rows:
                    if row["name"] not in desc:
                        desc[row["name"]] = row.get("kernel", "")
                        order_names.append(row["name"])
            common.log(f"round {r + 1}/{args.rounds} done")
    names = [n for n in order_names if all(n in times[m][0] for m in mods)]
    ref = [n for n in names
           if (args.changed is None or args.changed not in desc[n]) and len({fns[m].get(n) for m in mods}) == 1]
    base = mods[0]

    def scale(m: str, r: int) -> float:
        a = sum(times[base][r][n] for n in ref)
        b = sum(times[m][r][n] for n in ref)
        return a / b if a > 0 and b > 0 else 1.0

    headers = ["layer"] + [f"best ms {i}" for i in range(len(mods))] + [f"ratio {i}/0" for i in range(1, len(mods))]
    rows = []
    for n in names:
        if n in ref:
            continue
        best = [min(t[n] for t in times[m]) for m in mods]
        if max(best) < args.min_ms:
            continue
        ratios = [statistics.median(times[m][r][n] * scale(m, r) / times[base][r][n] for r in range(args.rounds)
                                    if times[base][r][n] > 0) for m in mods[1:]]
        rows.append([desc[n][:56]] + [f"{v:.3f}" for v in best] + [f"{v:.2f}" for v in ratios])
    whole = [statistics.median(sum(times[m][r].values()) * scale(m, r) / sum(times[base][r].values())
                               for r in range(args.rounds)) for m in mods[1:]]
    print(f"{common.cpu_model()}, {args.threads} thread(s), {args.rounds} rounds of {args.repeat} runs; "
          f"{len(ref)} of {len(names)} layers are the same kernel in every module (the reference)")
    for i, m in enumerate(mods):
        print(f"  module {i}: {m}")
    print(common.format_text_table(headers, rows) if rows else "no layer differs between the modules")
    print("whole model, scaled ratio to module 0: " + ", ".join(f"{i}: {v:.3f}" for i, v in enumerate(whole, 1)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
