#!/usr/bin/env python3
"""Emulated Raspberry Pi latency: qnnc rpi4/rpi5 bundles vs ONNX Runtime's aarch64 build, under QEMU.

In one run, on a torchvision ResNet (seed 0, batch-norm statistics re-estimated), batch 1:

1. exports the model to ONNX and saves --calib-samples seeded N(0,1) inputs (seeds 1000, ...)
   as one calib.npz (np.savez), and one timing/check input x (seed 2000) as x.npy;
2. qnnc: compiles host modules (fp32, int8, and any --precisions) and runs them on x (`qnnc run`)
   as the reference; then for board in rpi4, rpi5 and each precision: `qnnc compile --target
   BOARD` (quantized: `--quantize P --calib-data calib.npz`) and `qnnc emulate` at each thread
   count (qemu-aarch64 -cpu cortex-a72 for rpi4, cortex-a76 for rpi5) with --input x.npy
   --output; every emulated output is checked against the host module of the same precision:
   integer precisions must be bit-identical, fp32 within --fp32-tol relative L2. Low-bit
   precisions are also compared with the board's own int8 (issue #9: int1 at least 3x
   faster). Also checks that an rpi5
   bundle refuses to start on a Cortex-A72 (exit status 3);
3. ONNX Runtime (unless --no-ort): downloads the aarch64 manylinux wheel of the host's
   onnxruntime version (pip download --platform manylinux_2_28_aarch64 ...), takes
   onnxruntime/capi/libonnxruntime.so.* from it, builds bench/ort_driver/ort_bench.cpp with
   aarch64-linux-gnu-g++ and runs it under qemu-aarch64 with the board's CPU model on the fp32
   model and on an int8 QDQ model from onnxruntime.quantization.quantize_static (same
   calibration inputs; as in bench_int8.py). ONNX Runtime reads /proc/cpuinfo at load and
   crashes under QEMU user mode when it sees the host's x86 one, so each board gets a small
   sysroot for `qemu-aarch64 -L`: lib -> /usr/aarch64-linux-gnu/lib (Debian's cross glibc)
   and a fake proc/cpuinfo of a Cortex-A72 (part 0xd08) or Cortex-A76 (part 0xd0b). Its
   outputs are compared with host ONNX Runtime (reported only). If any setup step fails, ONNX
   Runtime is skipped and the reason is reported;
4. prints one table (board | system | precision | threads | median ms | int8/fp32 ratio) and
   the output checks; with --results appends them (date, machine, commit, command) and a note
   on what emulated time means to that file.

Emulated time measures QEMU's cost of translating each aarch64 instruction into host code,
not a Raspberry Pi's speed: see the note appended to the results.

Exits 1 if a qnnc command fails or an output check fails (after printing the tables).

Example:
    .venv/bin/python bench/bench_qemu.py --qnnc build/qnnc --model resnet50 --size 224 \\
        --threads 1,4 --repeat 3 --warmup 1 --workdir out/bench_qemu --results bench/RESULTS.md
"""

from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import numpy as np

import common  # also puts tests/python on sys.path
import models
from bench_int8 import CALIB_SEED0, EVAL_SEED0, ort_quantize_int8, save_calibration, seeded_inputs

BOARDS = {  # board -> (qemu -cpu, fake /proc/cpuinfo: part, variant, features)
    "rpi4": ("cortex-a72", "0xd08", "0x0", "fp asimd evtstrm crc32 cpuid"),
    "rpi5": ("cortex-a76", "0xd0b", "0x4", "fp asimd evtstrm aes pmull sha1 sha2 crc32 atomics fphp asimdhp "
                                           "cpuid asimdrdm lrcpc dcpop asimddp"),
}
PRECISIONS = ("fp32", "int8")  # default; --precisions adds low-bit ones (int4, int2, int1, wXaY)
AARCH64_SYSROOT = "/usr/aarch64-linux-gnu"  # Debian's cross glibc/libstdc++ (g++-aarch64-linux-gnu)
CROSS_CXX = "aarch64-linux-gnu-g++"
DRIVER_SRC = Path(__file__).resolve().parent / "ort_driver" / "ort_bench.cpp"
REFUSE_EXIT = 3  # an rpi5 bundle's exit status on a CPU without the dot product


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    models.add_model_args(p)
    p.add_argument("--boards", default="rpi4,rpi5",
                   help="comma-separated boards, from rpi4, rpi5 (default: %(default)s)")
    p.add_argument("--threads", type=common.parse_int_list, default=[1, 4],
                   help="comma-separated thread counts (default: 1,4)")
    p.add_argument("--repeat", type=int, default=3, help="timed runs per measurement (default: %(default)s)")
    p.add_argument("--warmup", type=int, default=1, help="untimed warm-up runs (default: %(default)s)")
    p.add_argument("--calib-samples", type=int, default=8,
                   help="calibration inputs shared by qnnc and ONNX Runtime (default: %(default)s)")
    p.add_argument("--fp32-tol", type=float, default=1e-4,
                   help="largest relative L2 error of emulated fp32 vs host fp32 (default: %(default)g)")
    p.add_argument("--precisions", default=",".join(PRECISIONS),
                   help="qnnc precisions, comma-separated; fp32 and int8 are always included "
                        "(default: %(default)s; e.g. fp32,int8,int2,int1)")
    p.add_argument("--no-ort", action="store_true", help="skip ONNX Runtime under QEMU")
    p.add_argument("--ort-wheel", default=None,
                   help="an onnxruntime manylinux aarch64 wheel to use instead of downloading one")
    p.add_argument("--workdir", default=None,
                   help="directory for models, modules, the ORT wheel and JSON (default: a temporary one)")
    p.add_argument("--results", default=None, help="markdown file to append the results to")
    p.add_argument("--timeout", type=float, default=3600,
                   help="seconds allowed for each command (default: %(default)s)")
    args = p.parse_args(argv)
    if args.repeat < 1 or args.warmup < 0:
        p.error("--repeat must be >= 1 and --warmup >= 0")
    if args.calib_samples < 1:
        p.error("--calib-samples must be >= 1")
    boards = [b.strip() for b in args.boards.split(",") if b.strip()]
    bad = [b for b in boards if b not in BOARDS]
    if not boards or bad:
        p.error(f"--boards: expected rpi4 and/or rpi5, got {args.boards!r}")
    args.boards = list(dict.fromkeys(boards))
    args.precisions = list(dict.fromkeys(list(PRECISIONS) + [q.strip() for q in args.precisions.split(",") if q.strip()]))
    return args



def tail(text: str, lines: int = 6) -> str:
    return " | ".join(text.strip().splitlines()[-lines:]) if text and text.strip() else "(no output)"


# ---------------------------------------------------------------- qnnc

def qnnc_compile(args, onnx_path: str, out_dir: str, precision: str, calib_path: str,
                 board: str | None) -> float:
    cmd = [args.qnnc, "compile", onnx_path, "-o", out_dir, "--quiet"]
    if board:
        cmd += ["--target", board]
    if precision != "fp32":
        cmd += ["--quantize", precision, "--calib-data", calib_path]
    _, seconds = common.run_cmd(cmd, args.timeout)
    return seconds


def qnnc_emulate(args, module_dir: str, board: str, threads: int, x_path: str, out_path: str,
                 json_path: str) -> dict:
    for path in (out_path, json_path):
        if os.path.exists(path):
            os.remove(path)
    common.run_cmd([args.qnnc, "emulate", module_dir, "--board", board, "--threads", str(threads),
                    "--repeat", str(args.repeat), "--warmup", str(args.warmup), "--input", x_path,
                    "--output", out_path, "--json", json_path], args.timeout)
    with open(json_path) as f:
        stats = json.load(f)
    missing = [k for k in ("median_ms", "min_ms", "max_ms") if k not in stats]
    if missing:
        raise common.CommandError(f"qnnc emulate JSON {json_path} lacks keys: {', '.join(missing)}")
    return stats


def check_refusal(args, rpi5_dir: str) -> tuple[str, bool]:
    """An rpi5 bundle run on a Cortex-A72 must refuse to start with exit status 3."""
    cmd = [args.qnnc, "emulate", rpi5_dir, "--board", "rpi4", "--threads", "1", "--repeat", "1", "--warmup", "0"]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except (OSError, subprocess.SubprocessError) as exc:
        return f"rpi5 bundle on cortex-a72: could not run ({exc}) -> FAIL", False
    ok = proc.returncode == REFUSE_EXIT
    msg = tail(proc.stderr, 1)
    return (f"rpi5 int8 bundle on cortex-a72 (qnnc emulate --board rpi4): exit status {proc.returncode} "
            f"(expected {REFUSE_EXIT}; \"{msg}\") -> {'PASS' if ok else 'FAIL'}"), ok


# ---------------------------------------------------------------- output checks

def compare(ref: np.ndarray, out: np.ndarray, precision: str, tol: float, strict: bool) -> dict:
    """exact equality, max abs diff and relative L2 of out vs ref; verdict when strict."""
    ref = np.asarray(ref, np.float32).reshape(-1)
    out = np.asarray(out, np.float32).reshape(-1)
    if ref.shape != out.shape:
        return {"exact": False, "max_abs": float("inf"), "rel_l2": float("inf"),
                "verdict": f"FAIL (shape {out.shape} vs {ref.shape})" if strict else "differs", "ok": not strict}
    exact = bool(np.array_equal(ref, out))
    max_abs = float(np.max(np.abs(out.astype(np.float64) - ref.astype(np.float64)))) if ref.size else 0.0
    rel = models.rel_l2(ref, out)
    if not strict:
        verdict, ok = "(reported only)", True
    elif precision == "fp32":
        ok = rel <= tol
        verdict = f"{'PASS' if ok else 'FAIL'} (rel L2 <= {tol:g})"
    else:
        ok = exact
        verdict = f"{'PASS' if ok else 'FAIL'} (bit-identical)"
    return {"exact": exact, "max_abs": max_abs, "rel_l2": rel, "verdict": verdict, "ok": ok}


# ---------------------------------------------------------------- ONNX Runtime under QEMU

class OrtSetupError(RuntimeError):
    """A step of setting up ONNX Runtime under QEMU failed; the message says which."""


def run_step(what: str, cmd: list[str], timeout: float) -> subprocess.CompletedProcess:
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise OrtSetupError(f"{what}: timed out after {timeout:.0f} s: {' '.join(cmd)}")
    except OSError as exc:
        raise OrtSetupError(f"{what}: cannot run {cmd[0]}: {exc}")
    if proc.returncode != 0:
        raise OrtSetupError(f"{what}: exit status {proc.returncode}: {tail(proc.stderr or proc.stdout)}")
    return proc


def fetch_ort_wheel(args, version: str, dest: str) -> str:
    """The onnxruntime aarch64 wheel: --ort-wheel, one already in dest, or pip download."""
    if args.ort_wheel:
        if not os.path.isfile(args.ort_wheel):
            raise OrtSetupError(f"--ort-wheel {args.ort_wheel}: no such file")
        return args.ort_wheel
    pattern = os.path.join(dest, f"onnxruntime-{version}-*aarch64*.whl")
    found = sorted(glob.glob(pattern))
    if found:
        return found[-1]
    os.makedirs(dest, exist_ok=True)
    base = [sys.executable, "-m", "pip", "download", "--only-binary=:all:", "--no-deps", "-d", dest,
            "--platform", "manylinux_2_28_aarch64", "--platform", "manylinux_2_27_aarch64",
            "--platform", "manylinux2014_aarch64"]
    try:
        run_step("pip download (aarch64 wheel)", base + [f"onnxruntime=={version}"], args.timeout)
    except OrtSetupError as exact_error:
        common.log(f"  no aarch64 wheel of onnxruntime {version} ({exact_error}); trying the newest")
        run_step("pip download (aarch64 wheel, newest)", base + ["onnxruntime"], args.timeout)
    found = sorted(glob.glob(os.path.join(dest, "onnxruntime-*aarch64*.whl")))
    if not found:
        raise OrtSetupError(f"pip download left no onnxruntime aarch64 wheel in {dest}")
    return found[-1]


def extract_ort_library(wheel: str, dest: str) -> str:
    """Extract onnxruntime/capi/libonnxruntime.so* from the wheel; returns its path."""
    with zipfile.ZipFile(wheel) as zf:
        names = [n for n in zf.namelist()
                 if os.path.basename(n).startswith("libonnxruntime.so") and "/capi/" in n]
        if not names:
            raise OrtSetupError(f"{os.path.basename(wheel)} holds no onnxruntime/capi/libonnxruntime.so* "
                                f"(wheels up to 1.16 ship only the Python extension)")
        name = max(names, key=len)  # libonnxruntime.so.X.Y.Z over a plain libonnxruntime.so
        os.makedirs(dest, exist_ok=True)
        path = os.path.join(dest, os.path.basename(name))
        with zf.open(name) as src, open(path, "wb") as dst:
            shutil.copyfileobj(src, dst)
    os.chmod(path, 0o755)
    return path


def cpu_indices() -> int:
    """Number of CPUs the kernel lists as possible (what ORT's cpuinfo matches /proc/cpuinfo against)."""
    try:
        text = Path("/sys/devices/system/cpu/possible").read_text().strip()
        last = max(int(part.split("-")[-1]) for part in text.split(",") if part)
        return last + 1
    except (OSError, ValueError):
        return os.cpu_count() or 1


def make_sysroot(root: str, board: str) -> str:
    """A `qemu-aarch64 -L` prefix: lib -> the cross glibc, proc/cpuinfo -> a fake ARM one."""
    _, part, variant, features = BOARDS[board]
    os.makedirs(os.path.join(root, "proc"), exist_ok=True)
    lib = os.path.join(root, "lib")
    if not os.path.islink(lib):
        os.symlink(os.path.join(AARCH64_SYSROOT, "lib"), lib)
    entries = []
    for i in range(cpu_indices()):
        entries.append(f"processor\t: {i}\nBogoMIPS\t: 108.00\nFeatures\t: {features}\n"
                       f"CPU implementer\t: 0x41\nCPU architecture: 8\nCPU variant\t: {variant}\n"
                       f"CPU part\t: {part}\nCPU revision\t: 1\n")
    Path(root, "proc", "cpuinfo").write_text("\n".join(entries) + "\n")
    return root


def setup_ort(args, workdir: str) -> dict:
    """Everything needed to run ORT's aarch64 build under QEMU; raises OrtSetupError."""
    try:
        import onnxruntime as ort
    except ImportError as exc:
        raise OrtSetupError(f"host onnxruntime is not importable ({exc}); it makes the int8 QDQ model")
    for tool in ("qemu-aarch64", CROSS_CXX):
        if not shutil.which(tool):
            raise OrtSetupError(f"{tool} not found (Debian: qemu-user, g++-aarch64-linux-gnu)")
    if not os.path.exists(os.path.join(AARCH64_SYSROOT, "lib", "ld-linux-aarch64.so.1")):
        raise OrtSetupError(f"no aarch64 glibc in {AARCH64_SYSROOT}/lib (Debian: libc6-dev-arm64-cross)")
    if not DRIVER_SRC.is_file():
        raise OrtSetupError(f"driver source {DRIVER_SRC} is missing")
    ort_dir = os.path.join(workdir, "ort_aarch64")
    wheel = fetch_ort_wheel(args, ort.__version__, os.path.join(workdir, "ort_wheel"))
    common.log(f"  wheel {os.path.basename(wheel)}")
    lib = extract_ort_library(wheel, ort_dir)
    driver = os.path.join(ort_dir, "ort_bench")
    run_step("building the ORT driver", [CROSS_CXX, "-O2", "-std=c++17", "-o", driver, str(DRIVER_SRC), "-ldl"],
             args.timeout)
    roots = {b: make_sysroot(os.path.join(workdir, f"qemu_root_{b}"), b) for b in args.boards}
    return {"lib": os.path.abspath(lib), "driver": os.path.abspath(driver), "roots": roots,
            "wheel": os.path.basename(wheel), "host_version": ort.__version__}


def ort_emulate(args, env: dict, board: str, model_path: str, x_raw: str, shape: tuple, in_name: str,
                out_name: str, threads: int, out_path: str, json_path: str) -> dict:
    for path in (out_path, json_path):
        if os.path.exists(path):
            os.remove(path)
    cpu = BOARDS[board][0]
    cmd = ["qemu-aarch64", "-cpu", cpu, "-L", os.path.abspath(env["roots"][board]), env["driver"], env["lib"],
           os.path.abspath(model_path), os.path.abspath(x_raw), ",".join(str(d) for d in shape), in_name, out_name,
           str(threads), str(args.repeat), str(args.warmup), os.path.abspath(out_path), os.path.abspath(json_path)]
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=args.timeout)
    except subprocess.TimeoutExpired:
        raise OrtSetupError(f"timed out after {args.timeout:.0f} s")
    if proc.returncode != 0:
        raise OrtSetupError(f"qemu-aarch64 exit status {proc.returncode}: {tail(proc.stderr + proc.stdout)}")
    with open(json_path) as f:
        return json.load(f)


# ---------------------------------------------------------------- report

HEADERS = ["board", "system", "precision", "threads", "median ms", "ratio to fp32"]
CHECK_HEADERS = ["board", "system", "precision", "threads", "reference", "bit-identical", "max abs diff",
                 "rel L2", "verdict"]

NOTE = (
    "Emulated time is not a Raspberry Pi's speed: `qemu-aarch64` (user mode, TCG) translates every "
    "aarch64 instruction into x86 code, so these numbers measure how expensive each instruction mix is "
    "to emulate. fp32 NEON arithmetic emulates at about the same cost on both CPU models (QEMU runs "
    "each float lane through its floating-point helpers), so fp32 times for rpi4 and rpi5 are close. The "
    "Cortex-A76's dot-product instructions (sdot/udot, which the rpi5 int8 kernels use) are emulated "
    "by a cheap integer helper that does 16 multiply-adds in one call, while the Cortex-A72 needs "
    "several widening multiply/accumulate instructions for the same work, so int8 gains more over "
    "fp32 on rpi5 than on rpi4. More generally, int8/fp32 ratios here are far smaller than a real "
    "Pi would show: much integer NEON maps onto host vector code, float NEON onto per-lane helper calls. "
    "Threads are host threads: 4 threads share this machine's cores, so "
    "more threads than cores cannot help. Use these numbers to compare code paths (int8 vs fp32, "
    "qnnc vs ONNX Runtime on the same board), not to predict milliseconds on a Pi.")


def ratio_cell(timings: dict, board: str, system: str, precision: str, threads: int) -> str:
    if precision == "fp32":
        return "-"
    fp = timings.get((board, system, "fp32", threads))
    q = timings.get((board, system, precision, threads))
    if not fp or not q:
        return "n/a"
    return f"{q['median_ms'] / fp['median_ms']:.2f}"


def table_rows(timings: dict, boards: list[str], systems: list[str], threads_list: list[int],
               precisions: list[str]) -> list:
    rows = []
    for board in boards:
        for system in systems:
            for precision in precisions:
                for threads in threads_list:
                    stats = timings.get((board, system, precision, threads))
                    if stats is None:
                        continue
                    rows.append([board, system, precision, str(threads), f"{stats['median_ms']:.1f}",
                                 ratio_cell(timings, board, system, precision, threads)])
    return rows


def check_rows(checks: list) -> list:
    return [[c["board"], c["system"], c["precision"], str(c["threads"]), c["reference"],
             "yes" if c["exact"] else "no", f"{c['max_abs']:.3g}", f"{c['rel_l2']:.2e}", c["verdict"]]
            for c in checks]


def tool_version(cmd: list[str]) -> str:
    try:
        out = subprocess.run(cmd, capture_output=True, text=True, timeout=30).stdout
        return out.strip().splitlines()[0] if out.strip() else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


# ---------------------------------------------------------------- main

def run_benchmark(args: argparse.Namespace, workdir: str) -> int:
    name = f"{args.model}_{args.size}_op{args.opset}"
    onnx_path = os.path.join(workdir, f"{name}.onnx")
    calib_path = os.path.join(workdir, "calib.npz")
    x_path, x_raw = os.path.join(workdir, "x.npy"), os.path.join(workdir, "x.f32")
    notes: list[str] = []
    checks: list[dict] = []
    all_ok = True

    common.log(f"building {args.model} (seed 0, BN re-estimated) and exporting ONNX opset {args.opset}")
    model = models.make_torchvision(args.model, seed=0, size=args.size)
    models.export_onnx(model, onnx_path, args.size, opset=args.opset)
    calib = seeded_inputs(args.size, args.calib_samples, CALIB_SEED0)
    save_calibration(calib_path, calib)
    x = models.random_input(args.size, seed=EVAL_SEED0)
    np.save(x_path, x)
    x.tofile(x_raw)
    notes.append(f"calibration: {len(calib)} seeded N(0,1) inputs (seeds {CALIB_SEED0}...{CALIB_SEED0 + len(calib) - 1}), "
                 f"shared by qnnc and ONNX Runtime; timed and checked on one input (seed {EVAL_SEED0})")
    notes.append(f"emulator: {tool_version(['qemu-aarch64', '--version'])}; rpi4 = -cpu cortex-a72, "
                 f"rpi5 = -cpu cortex-a76")

    # qnnc host reference outputs
    host_out = {}
    for precision in args.precisions:
        mdir = os.path.join(workdir, f"{name}_{precision}_host.qnnc")
        common.log(f"qnnc compile {precision} (host reference) -> {mdir}")
        qnnc_compile(args, onnx_path, mdir, precision, calib_path, None)
        out_path = os.path.join(workdir, f"host_{precision}.npy")
        common.run_cmd([args.qnnc, "run", mdir, "--input", x_path, "--output", out_path], args.timeout)
        host_out[precision] = np.load(out_path)

    timings: dict = {}
    compile_times = []
    modules = {}
    for board in args.boards:
        for precision in args.precisions:
            mdir = os.path.join(workdir, f"{name}_{precision}_{board}.qnnc")
            common.log(f"qnnc compile {precision} --target {board} -> {mdir}")
            seconds = qnnc_compile(args, onnx_path, mdir, precision, calib_path, board)
            compile_times.append(f"{board} {precision} {seconds:.0f} s")
            modules[(board, precision)] = mdir
            for threads in args.threads:
                common.log(f"  qnnc emulate {board} {precision} threads={threads}")
                out_path = os.path.join(workdir, f"qnnc_{board}_{precision}_t{threads}.npy")
                stats = qnnc_emulate(args, mdir, board, threads, x_path, out_path,
                                     os.path.join(workdir, f"qnnc_{board}_{precision}_t{threads}.json"))
                timings[(board, "qnnc", precision, threads)] = stats
                c = compare(host_out[precision], np.load(out_path), precision, args.fp32_tol, strict=True)
                c.update(board=board, system="qnnc", precision=precision, threads=threads,
                         reference=f"qnnc host {precision}")
                checks.append(c)
                all_ok &= c["ok"]
                common.log(f"    median {stats['median_ms']:.1f} ms; output {c['verdict']}, max abs diff {c['max_abs']:.3g}")
    notes.append("qnnc cross-compile time: " + ", ".join(compile_times))
    refusal_ok = True
    if "rpi5" in args.boards:
        line, refusal_ok = check_refusal(args, modules[("rpi5", "int8")])
        common.log(line)
        notes.append(line)
        all_ok &= refusal_ok

    systems = ["qnnc"]
    if args.no_ort:
        notes.append("ONNX Runtime under QEMU: skipped (--no-ort)")
    else:
        common.log("ONNX Runtime aarch64 under QEMU: setting up")
        try:
            env = setup_ort(args, workdir)
        except OrtSetupError as exc:
            env = None
            common.log(f"  ONNX Runtime skipped: {exc}")
            notes.append(f"ONNX Runtime under QEMU: skipped, setup failed: {exc}")
        if env is not None:
            import onnxruntime as ort
            quant_path = os.path.join(workdir, f"{name}_ort_int8.onnx")
            common.log("  host quantize_static (QDQ, U8 activations, S8 per-channel weights, MinMax)")
            ort_quantize_int8(onnx_path, quant_path, calib)
            ort_models = {"fp32": onnx_path, "int8": quant_path}
            ref, io_names = {}, {}
            for precision, path in ort_models.items():
                sess = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
                io_names[precision] = (sess.get_inputs()[0].name, sess.get_outputs()[0].name)
                ref[precision] = sess.run(None, {io_names[precision][0]: x})[0]
            failures = []
            for board in args.boards:
                for precision, path in ort_models.items():
                    for threads in args.threads:
                        common.log(f"  onnxruntime {board} {precision} threads={threads}")
                        out_path = os.path.join(workdir, f"ort_{board}_{precision}_t{threads}.f32")
                        try:
                            stats = ort_emulate(args, env, board, path, x_raw, x.shape, *io_names[precision], threads,
                                                out_path, os.path.join(workdir, f"ort_{board}_{precision}_t{threads}.json"))
                        except OrtSetupError as exc:
                            failures.append(f"{board} {precision} threads={threads}: {exc}")
                            common.log(f"    failed: {exc}")
                            continue
                        timings[(board, "onnxruntime", precision, threads)] = stats
                        c = compare(ref[precision], np.fromfile(out_path, np.float32), precision, args.fp32_tol,
                                    strict=False)
                        c.update(board=board, system="onnxruntime", precision=precision, threads=threads,
                                 reference=f"ORT host {precision}")
                        checks.append(c)
                        common.log(f"    median {stats['median_ms']:.1f} ms; max abs diff vs host ORT {c['max_abs']:.3g}")
            systems.append("onnxruntime")
            notes.append(f"ONNX Runtime {env['host_version']} (host, makes the int8 model) and its aarch64 build "
                         f"from {env['wheel']}: libonnxruntime.so driven through the C API by "
                         f"bench/ort_driver/ort_bench.cpp (aarch64-linux-gnu-g++), run as qemu-aarch64 -cpu CPU "
                         f"-L SYSROOT with SYSROOT/lib -> {AARCH64_SYSROOT}/lib and a fake SYSROOT/proc/cpuinfo "
                         f"(Cortex-A72 part 0xd08 / Cortex-A76 part 0xd0b); intra-op threads = T, inter-op 1, "
                         f"sequential, graph optimisation ALL; int8 = quantize_static QDQ (QUInt8 activations, "
                         f"per-channel QInt8 weights, MinMax)")
            for f in failures:
                notes.append(f"ONNX Runtime run failed: {f}")

    rows = table_rows(timings, args.boards, systems, args.threads, args.precisions)
    crows = check_rows(checks)
    notes.append("ratio to fp32 = the precision's median / the fp32 median of the same board, system and threads "
                 "(< 1: faster than fp32 under emulation)")
    # Low-bit precisions against the board's own int8 (issue #9: int1 at least 3x faster).
    for board in args.boards:
        for threads in args.threads:
            q8 = timings.get((board, "qnnc", "int8", threads))
            for precision in args.precisions:
                q = timings.get((board, "qnnc", precision, threads))
                if precision in PRECISIONS or not q or not q8:
                    continue
                speedup = q8["median_ms"] / q["median_ms"]
                goal = f" (goal >= 3x: {'MET' if speedup >= 3 else 'MISSED'})" if precision == "int1" else ""
                notes.append(f"{board} threads={threads}: qnnc int8 / {precision} median time under emulation = "
                             f"{speedup:.2f} (> 1: {precision} faster){goal}")
    qnnc_checks = [c for c in checks if c["system"] == "qnnc"]
    summary = (f"output checks: {sum(c['ok'] for c in qnnc_checks)}/{len(qnnc_checks)} qnnc emulated outputs "
               f"match the host module (integer precisions bit-identical, fp32 rel L2 <= {args.fp32_tol:g})"
               + ("" if refusal_ok else "; rpi5-on-A72 refusal check FAILED"))

    title = (f"QEMU-emulated Raspberry Pi, {args.model} {args.size}x{args.size}, batch 1, "
             f"repeat {args.repeat}, warmup {args.warmup}")
    print()
    print(title)
    print(common.format_text_table(HEADERS, rows))
    print()
    print("output checks (emulated output vs host reference on the same input)")
    print(common.format_text_table(CHECK_HEADERS, crows))
    print()
    for line in [summary] + notes:
        print(line)
    print()
    print(NOTE)

    if args.results:
        table_md = (common.format_markdown_table(HEADERS, rows) + "\n\n"
                    + "Output checks (emulated output vs host reference on the same input):\n\n"
                    + common.format_markdown_table(CHECK_HEADERS, crows) + "\n\n" + NOTE)
        common.append_results(args.results, title, table_md, extra_lines=[summary] + notes)
        print(f"\nappended to {args.results}")
    if not all_ok:
        print("FAIL: an output check failed", file=sys.stderr)
        return 1
    return 0


def main(argv=None) -> int:
    return common.run_in_workdir(parse_args(argv), run_benchmark, "qnnc_bench_qemu_")


if __name__ == "__main__":
    sys.exit(main())
