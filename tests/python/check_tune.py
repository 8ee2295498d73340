#!/usr/bin/env python3
"""`qnnc tune` end to end on the builtin ResNet-18 (int8 and fp32, 32x32): records are written
(one default record per task, one line per candidate, a confirmation of each task's best), a run killed mid-line and resumed
continues the file without retrying measured knobs, `qnnc compile --tuning-records` takes the
records (tuned kernels marked in graph.json), kernels without records (another input size) named in a warning with their share of the MACs,
and the tuned module computes what the default one does (bit for bit in int8, within 1e-4 in
fp32). Tuned beating default is not asserted (that is a benchmark's job: bench/bench_tune.py).
Ends with 'N passed, M failed'."""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys

import numpy as np


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--qnnc", required=True)
    ap.add_argument("--workdir", required=True)
    args = ap.parse_args()
    shutil.rmtree(args.workdir, ignore_errors=True)
    os.makedirs(args.workdir)
    results = []

    def check(name, ok, detail=""):
        results.append(bool(ok))
        print(f"{'PASS' if ok else 'FAIL'}  {name}  {detail}", flush=True)

    def qnnc(*a):
        p = subprocess.run([args.qnnc, *a], capture_output=True, text=True)
        return p

    def read(path):
        with open(path) as f:
            return [json.loads(line) for line in f if line.strip()]

    model = ["builtin:resnet18", "--input-shape", "1,3,32,32"]
    for prec in ("int8", "fp32"):
        rec = os.path.join(args.workdir, f"{prec}.jsonl")
        quant = ["--quantize", prec] if prec != "fp32" else []
        p = qnnc("tune", *model, *quant, "-o", rec, "--trials", "4", "-t", "1", "-n", "3", "--seed", "1")
        check(f"{prec}: tune runs", p.returncode == 0, (p.stderr + p.stdout)[-600:])
        if p.returncode != 0:
            continue
        rs = read(rec)
        defaults = [r for r in rs if r["default"]]
        cands = [r for r in rs if not r["default"] and not r.get("confirmation")]
        confs = [r for r in rs if r.get("confirmation")]
        measured = {(r["task"], json.dumps(r["knobs"], sort_keys=True)) for r in cands if r["status"] == "ok"}
        check(f"{prec}: confirmations re-measure measured candidates, at most one per task, with a ratio to the default",
              len({r["task"] for r in confs}) == len(confs) and
              all((r["task"], json.dumps(r["knobs"], sort_keys=True)) in measured and
                  (r["vs_default"] > 0 or r["status"] != "ok") for r in confs),
              f"{len(confs)} confirmations")
        check(f"{prec}: a default record per task, one per candidate",
              len(defaults) >= 5 and len(cands) == 4 and len({r["task"] for r in defaults}) == len(defaults),
              f"{len(defaults)} defaults, {len(cands)} candidates")
        check(f"{prec}: records carry schema, target, knobs, times, status",
              all(r["schema"] == 1 and r["target"] and isinstance(r["knobs"], dict) and r["status"] for r in rs)
              and all(r["median_ms"] > 0 for r in rs if r["status"] == "ok"))
        check(f"{prec}: the per-task table is printed", "speed-up" in p.stdout and "trials" in p.stdout)
        # A killed run: the last line torn. --resume continues without retrying measured knobs.
        with open(rec, "a") as f:
            f.write('{"schema": 1, "target": "x')
        p = qnnc("tune", *model, *quant, "-o", rec, "--trials", "4", "-t", "1", "-n", "3", "--seed", "1")
        check(f"{prec}: an existing file without --resume is refused", p.returncode != 0 and "--resume" in p.stderr,
              p.stderr.strip()[-200:])
        p = qnnc("tune", *model, *quant, "-o", rec, "--trials", "4", "-t", "1", "-n", "3", "--seed", "1", "--resume")
        check(f"{prec}: --resume continues the file", p.returncode == 0, (p.stderr + p.stdout)[-400:])
        rs = read(rec)  # the torn line was cut off before appending
        cands = [r for r in rs if not r["default"] and not r.get("confirmation")]
        keys = [(r["task"], json.dumps(r["knobs"], sort_keys=True)) for r in cands]
        check(f"{prec}: resumed run adds 4 candidates, none measured before", len(cands) == 8 and len(set(keys)) == 8,
              f"{len(cands)} candidates, {len(set(keys))} distinct")
        # Compile with the records: tuned kernels marked, the rest named in a warning.
        d0, d1 = os.path.join(args.workdir, f"{prec}_default"), os.path.join(args.workdir, f"{prec}_tuned")
        qnnc("compile", *model, *quant, "-o", d0, "-q")
        p = qnnc("compile", *model, *quant, "-o", d1, "-q", "--tuning-records", rec)
        check(f"{prec}: compile --tuning-records", p.returncode == 0 and "kernels tuned from" in p.stdout,
              (p.stdout + p.stderr)[-400:])
        # The rule compile applies: a task is tuned where its best search candidate beat its default,
        # unless a confirmation re-measured it; then the confirmation's ratio decides.
        best, confirmed = {}, {}
        for r in rs:
            if r["status"] != "ok":
                continue
            if r.get("confirmation"):
                if r["vs_default"] > 0:
                    confirmed[r["task"]] = min(confirmed.get(r["task"], r["vs_default"]), r["vs_default"])
                continue
            key = "d" if r["default"] else "c"
            best.setdefault(r["task"], {}).setdefault(key, []).append(r)
        expect_tuned = sum(1 for t, v in best.items() if t not in confirmed and "c" in v and "d" in v and
                           min(x["median_ms"] for x in v["c"]) < min(x["median_ms"] for x in v["d"]))
        expect_tuned += sum(1 for ratio in confirmed.values() if ratio < 1.0)
        with open(os.path.join(d1, "graph.json")) as f:
            steps = json.load(f)["steps"]
        tuned_tasks = {json.dumps(s["spec"], sort_keys=True) for s in steps if s.get("tuned")}
        check(f"{prec}: kernels marked tuned where a record beat its default", expect_tuned == 0 or len(tuned_tasks) > 0,
              f"{sum(1 for s in steps if s.get('tuned'))} steps tuned; {expect_tuned} tasks had a faster record")
        check(f"{prec}: every tunable kernel measured: no warning", "no tuning record" not in p.stdout,
              [ln for ln in p.stdout.splitlines() if "tuning" in ln][:1])
        # The same records for another input size: no task matches, the kernels are named.
        p2 = qnnc("compile", "builtin:resnet18", "--input-shape", "1,3,48,48", *quant, "-o",
                  os.path.join(args.workdir, f"{prec}_48"), "-q", "--tuning-records", rec)
        share = re.search(r"\((\d+)% of the module's multiply-accumulates\)", p2.stdout)
        # Every convolution changed shape; only the dense layer (512->1000) matches a record.
        check(f"{prec}: kernels without records are named with their share", "no tuning record" in p2.stdout
              and share and 90 <= int(share.group(1)) < 100 and "conv2d" in p2.stdout,
              [ln for ln in p2.stdout.splitlines() if "warning" in ln][:1])
        x = os.path.join(args.workdir, "x.npy")
        np.save(x, np.random.default_rng(0).standard_normal((1, 3, 32, 32), dtype=np.float32))
        y0, y1 = os.path.join(args.workdir, f"{prec}_y0.npy"), os.path.join(args.workdir, f"{prec}_y1.npy")
        qnnc("run", d0, "-i", x, "-o", y0)
        qnnc("run", d1, "-i", x, "-o", y1)
        a, b = np.load(y0), np.load(y1)
        if prec == "int8":
            check("int8: tuned module's output equals the default's bit for bit", np.array_equal(a, b))
        else:
            rel = float(np.linalg.norm(a - b) / np.linalg.norm(a))
            check("fp32: tuned module's output within 1e-4 of the default's", rel <= 1e-4, f"rel L2 {rel:.2e}")
    # A record for another target is not used.
    rec = os.path.join(args.workdir, "int8.jsonl")
    if os.path.exists(rec):
        other = os.path.join(args.workdir, "other.jsonl")
        with open(rec) as f, open(other, "w") as g:
            for line in f:
                r = json.loads(line)
                r["target"] = "arm-64-linux-arm_dot_prod"
                g.write(json.dumps(r) + "\n")
        p = qnnc("compile", *model, "--quantize", "int8", "-o", os.path.join(args.workdir, "other"), "-q",
                 "--tuning-records", other)
        check("records of another target are not used", p.returncode == 0 and "0 kernels tuned" in p.stdout,
              p.stdout.strip()[:200])
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
