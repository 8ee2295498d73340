"""Shared helpers for qnnc benchmarks: timing, running qnnc, machine info, tables.

Used by bench_fp32.py (and later the int8 benchmarks). Also makes tests/python importable,
so benchmarks can `import models` for model construction and accuracy metrics.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable, Sequence

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests" / "python"))


class CommandError(RuntimeError):
    """A subprocess failed; the message includes its exit status and stderr."""


# ---------------------------------------------------------------- subprocesses

def run_cmd(cmd: Sequence[str], timeout: float | None = None) -> tuple[subprocess.CompletedProcess, float]:
    """Run `cmd`, return (completed process, wall seconds). Raise CommandError on failure."""
    start = time.perf_counter()
    try:
        proc = subprocess.run(list(cmd), capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired as exc:
        raise CommandError(f"timed out after {timeout:.0f} s: {shlex.join(cmd)}") from exc
    except OSError as exc:
        raise CommandError(f"cannot execute {cmd[0]}: {exc}") from exc
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise CommandError(f"command failed with exit status {proc.returncode}: {shlex.join(cmd)}\n"
                           f"--- stderr ---\n{proc.stderr.strip()}")
    return proc, elapsed


def qnnc_bench(qnnc: str, module_dir: str, threads: int, repeat: int, warmup: int,
               json_path: str, timeout: float | None = None) -> dict:
    """Run `qnnc bench` and return its JSON stats (median_ms, min_ms, max_ms, std_ms, ...)."""
    run_cmd([qnnc, "bench", module_dir, "--repeat", str(repeat), "--warmup", str(warmup),
             "--threads", str(threads), "--json", json_path], timeout=timeout)
    with open(json_path) as f:
        stats = json.load(f)
    missing = [k for k in ("median_ms", "min_ms", "max_ms", "std_ms") if k not in stats]
    if missing:
        raise CommandError(f"qnnc bench JSON {json_path} lacks keys: {', '.join(missing)}")
    return stats


# ---------------------------------------------------------------- timing

def time_fn(fn: Callable[[], object], repeat: int, warmup: int) -> dict:
    """Call fn() `warmup` times, then time `repeat` calls. Returns stats in milliseconds."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return summarize_ms(samples)


def summarize_ms(samples: Sequence[float]) -> dict:
    """median/min/max/std (population) of a list of millisecond timings."""
    return {
        "median_ms": statistics.median(samples),
        "min_ms": min(samples),
        "max_ms": max(samples),
        "std_ms": statistics.pstdev(samples) if len(samples) > 1 else 0.0,
        "repeat": len(samples),
    }


def parse_int_list(text: str) -> list[int]:
    """'1,2,4' -> [1, 2, 4] (argparse type)."""
    try:
        values = [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        values = []
    if not values or any(v <= 0 for v in values):
        import argparse
        raise argparse.ArgumentTypeError(f"expected comma-separated positive integers, got {text!r}")
    return values


# ---------------------------------------------------------------- environment

def cpu_model() -> str:
    """CPU 'model name' from /proc/cpuinfo (falls back to platform.processor())."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def cpu_count() -> int:
    """CPUs usable by this process."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def git_commit() -> str:
    """Short HEAD commit of the repository, '+dirty' if modified; 'unknown' on failure."""
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT,
                              capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "unknown"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"],
                               cwd=REPO_ROOT, capture_output=True, text=True, timeout=10)
        return head.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def command_line() -> str:
    """The command that started this script, quoted for a shell."""
    return shlex.join([os.path.relpath(sys.executable) if sys.executable.startswith(str(REPO_ROOT))
                       else sys.executable] + sys.argv)


def now_string() -> str:
    """Local date and time, e.g. 2024-05-01 13:37 UTC+02:00."""
    return datetime.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z")


# ---------------------------------------------------------------- tables

def format_text_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Aligned plain-text table (first column left-aligned, others right-aligned)."""
    cols = list(zip(headers, *rows))
    widths = [max(len(str(c)) for c in col) for col in cols]

    def fmt(cells):
        return "  ".join(str(c).ljust(w) if i == 0 else str(c).rjust(w)
                         for i, (c, w) in enumerate(zip(cells, widths)))

    lines = [fmt(headers), "  ".join("-" * w for w in widths)]
    lines += [fmt(r) for r in rows]
    return "\n".join(lines)


def format_markdown_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """GitHub-flavoured markdown table."""
    align = ["---"] + ["---:"] * (len(headers) - 1)
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)


def append_results(path: str | Path, title: str, table_md: str, extra_lines: Sequence[str] = ()) -> None:
    """Append a dated markdown section (machine, commit, command, table) to `path`."""
    path = Path(path)
    lines = [f"## {title} ({now_string()})", "",
             f"- Machine: {cpu_model()}, {cpu_count()} cores ({platform.system()} {platform.machine()})",
             f"- Commit: {git_commit()}",
             f"- Command: `{command_line()}`"]
    lines += [f"- {line}" for line in extra_lines]
    lines += ["", table_md, ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    prefix = ""
    if not path.exists() or path.stat().st_size == 0:
        prefix = "# qnnc benchmark results\n\n"
    else:
        with open(path, "rb") as f:
            f.seek(-1, os.SEEK_END)
            if f.read(1) != b"\n":
                prefix = "\n"
            prefix += "\n"
    with open(path, "a") as f:
        f.write(prefix + "\n".join(lines))


def run_in_workdir(args, run_benchmark, prefix: str) -> int:
    """Runs run_benchmark(args, workdir) in args.workdir or a temporary directory; a failing
    command becomes a FAIL line and exit status 1."""
    with tempfile.TemporaryDirectory(prefix=prefix) as tmp:
        workdir = os.path.abspath(args.workdir or tmp)
        os.makedirs(workdir, exist_ok=True)
        try:
            return run_benchmark(args, workdir)
        except CommandError as exc:
            print(f"FAIL: {exc}", file=sys.stderr)
            return 1


def log(msg: str) -> None:
    """Progress line of a benchmark."""
    print(f"[bench] {msg}", flush=True)


def ort_session(onnx_path: str, threads: int, optimized_path: str | None = None):
    """ONNX Runtime CPU session with `threads` intra-op threads, sequential, all graph
    optimizations (optionally saving the optimized graph)."""
    import onnxruntime as ort
    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    if optimized_path:
        so.optimized_model_filepath = optimized_path
    return ort.InferenceSession(onnx_path, so, providers=["CPUExecutionProvider"])


def bench_torch(model, x, threads: int, repeat: int, warmup: int) -> dict:
    """Time PyTorch inference (eager, TorchScript or quantized) with torch.set_num_threads(threads)."""
    import torch
    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    xt = torch.from_numpy(x)
    try:
        with torch.no_grad():
            return time_fn(lambda: model(xt), repeat, warmup)
    finally:
        torch.set_num_threads(previous)
