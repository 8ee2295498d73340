"""qnnc from Python: compile neural networks into modules of generated kernels and call them.

    import numpy as np, qnnc
    m = qnnc.compile("builtin:resnet18", input_shape=(1, 3, 224, 224), precision="int8")
    y = m(np.random.default_rng(0).standard_normal(m.input_shape, dtype=np.float32))
    print(m.benchmark(repeat=20, threads=2)["median_ms"])

A model is an ONNX file path, an ``onnx.ModelProto``, ``"builtin:resnet50"`` (seeded weights, no
file) or a ``torch.nn.Module`` (exported through ``torch.onnx`` with ``example_inputs``; torch
is only touched when you pass one). The heavy work runs in qnnc's C++ library (the ``_qnnc``
extension), with the GIL released. Errors are :class:`QnncError` with the messages the
``qnnc`` command prints.
"""
from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import weakref
from pathlib import Path
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple, Union

import numpy as np

from . import _qnnc
from ._qnnc import QnncError

__all__ = ["compile", "load", "tune", "Module", "QnncError", "__version__"]
__version__ = "0.1.0"

PathLike = Union[str, "os.PathLike[str]"]


class Module:
    """A compiled module loaded into this process (a directory of kernels.so, weights.bin and
    graph.json). Call it with float32 NCHW arrays: numpy arrays, or anything with
    ``__dlpack__`` (a CPU torch tensor, ...), read in place when C-contiguous float32.

    Calls may come from several threads at once; each concurrent call gets its own activation
    memory, so the outputs are those of sequential calls."""

    def __init__(self, path: PathLike, *, _owned_dir: Optional[str] = None):
        self._m = _qnnc.Module.load(os.fspath(path))
        self.path = os.fspath(path)
        self.summary: Dict[str, Any] = {}
        if _owned_dir:  # a temporary directory from compile(output_dir=None), removed with the module
            self._cleanup = weakref.finalize(self, shutil.rmtree, _owned_dir, True)

    # -- shape and plan -------------------------------------------------------------------
    @property
    def input_shapes(self) -> List[Tuple[int, ...]]:
        """Shapes of all inputs, in order (N, C, H, W for images)."""
        return [tuple(s) for s in self._m.input_shapes]

    @property
    def output_shapes(self) -> List[Tuple[int, ...]]:
        return [tuple(s) for s in self._m.output_shapes]

    @property
    def input_shape(self) -> Tuple[int, ...]:
        """Shape of the first input."""
        return self.input_shapes[0]

    @property
    def output_shape(self) -> Tuple[int, ...]:
        """Shape of the first output."""
        return self.output_shapes[0]

    @property
    def manifest(self) -> Dict[str, Any]:
        """The execution plan (graph.json): target, precision, steps with their kernels, values."""
        return json.loads(self._m.manifest_json())

    @property
    def precision(self) -> str:
        return self.manifest.get("precision", "fp32")

    @property
    def threads(self) -> int:
        return self._m.threads

    def set_threads(self, n: int) -> None:
        """Threads for the kernels' parallel loops (<= 0: all cores; shared by all modules)."""
        self._m.set_threads(int(n))

    # -- running --------------------------------------------------------------------------
    def __call__(self, *inputs: Any) -> Union[np.ndarray, Tuple[np.ndarray, ...]]:
        """Runs the model. Returns one numpy array, or a tuple when the model has several outputs."""
        if len(inputs) != len(self.input_shapes):
            raise QnncError(f"the module takes {len(self.input_shapes)} input(s), got {len(inputs)}")
        args = [_as_input(x, i) for i, x in enumerate(inputs)]
        try:
            outs = self._m.run(args)
        except TypeError as e:  # nanobind could not view the argument as float32 C-contiguous memory
            raise QnncError(f"cannot read the input as a C-contiguous float32 CPU array: {e}") from None
        return outs[0] if len(outs) == 1 else tuple(outs)

    def benchmark(self, repeat: int = 20, threads: Optional[int] = None, warmup: int = 3,
                  seed: int = 0) -> Dict[str, float]:
        """Times whole runs on a seeded random input: median/min/max/mean/std milliseconds."""
        if threads is not None:
            self.set_threads(threads)
        return dict(self._m.benchmark(int(repeat), int(warmup), int(seed)))

    def profile(self, repeat: int = 10, warmup: int = 2, threads: Optional[int] = None,
                seed: int = 0) -> Dict[str, Any]:
        """Per-layer median times. Returns {"threads", "total_ms", "machine", "peaks": {"fp32":
        {"gops", "unit", "what"}, "int8": ..., "binary": ...}, "rows": [{"step", "name", "kernel",
        "kind", "precision", "ms", "macs", "gops", "peak", "peak_pct"}, ...]}; peaks are this
        CPU's, measured at the module's thread count."""
        if threads is not None:
            self.set_threads(threads)
        return json.loads(self._m.profile(int(repeat), int(warmup), int(seed)))

    def evaluate(self, inputs: Any, labels: Any = None) -> Dict[str, Any]:
        """Top-1/top-5 accuracy on labelled data: ``evaluate(x, y)`` with x float32 N x (the
        input's per-sample shape) and y N class indices, or ``evaluate("test.npz")`` (arrays
        inputs/x and labels/y). Runs in batches of the compiled batch size. Returns {"top1",
        "top5", "samples", "classes", "seconds"} (fractions)."""
        if labels is None:
            if not isinstance(inputs, (str, os.PathLike)):
                raise QnncError("evaluate takes (inputs, labels) or the path of an .npz holding both")
            return json.loads(self._m.evaluate_npz(os.fspath(inputs)))
        x = _as_input(inputs, 0)
        y = np.asarray(labels)
        if y.ndim != 1 or not np.issubdtype(y.dtype, np.integer):
            raise QnncError(f"labels must be a 1-D array of class indices, got {y.dtype} of shape {y.shape}")
        return json.loads(self._m.evaluate(x, [int(v) for v in y]))

    def inspect(self, layer: str, what: str = "stmt") -> str:
        """Generated code of one step (a name from ``manifest["steps"]``): ``"stmt"`` is Halide's
        lowered loop nest, ``"asm"`` the assembly."""
        return self._m.inspect(layer, what)

    def __repr__(self) -> str:
        return (f"qnnc.Module({self.path!r}, {self.precision}, input {self.input_shape}, "
                f"output {self.output_shape})")


def _as_input(x: Any, i: int) -> Any:
    """numpy arrays are checked here (clear messages); other objects go to the extension, which
    reads them through DLPack without a copy."""
    if isinstance(x, np.ndarray):
        if x.dtype != np.float32:
            raise QnncError(f"input {i} has dtype {x.dtype}: qnnc modules take float32 (x.astype(np.float32))")
        return np.ascontiguousarray(x)
    if hasattr(x, "__dlpack__"):
        return x
    return _as_input(np.asarray(x), i)


class _Progress:
    """Shows compile progress (kernels, calibration): tqdm bars on a terminal, plain lines
    (each kernel, each quarter of the calibration runs) otherwise."""

    def __init__(self) -> None:
        self.tty = sys.stderr.isatty()
        self.task: Optional[str] = None
        self.bar: Any = None
        self.quarter = -1

    def __call__(self, task: str, done: int, total: int, cached: int, detail: str) -> None:
        if task != self.task:
            self.close()
            self.task, self.quarter = task, -1
            if self.tty:
                from tqdm import tqdm
                self.bar = tqdm(total=total, desc=task, unit="", leave=True, file=sys.stderr)
        if self.bar is not None:
            self.bar.n = done
            self.bar.set_postfix_str((f"{cached} cached  " if cached else "") + detail[:40], refresh=True)
        elif "kernels" in task:
            if done > 0:
                print(f"qnnc: {task} [{done}/{total}] {detail}", file=sys.stderr, flush=True)
        elif total and 4 * done // total != self.quarter:
            self.quarter = 4 * done // total
            print(f"qnnc: {task} {done}/{total}", file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _qnnc_executable() -> str:
    """The qnnc command: $QNNC_EXE, else the one pip installed beside this Python, else PATH."""
    import shutil
    import sysconfig
    env = os.environ.get("QNNC_EXE")
    if env:
        return env
    for cand in (os.path.join(sysconfig.get_path("scripts"), "qnnc"), os.path.join(os.path.dirname(sys.executable), "qnnc"),
                 shutil.which("qnnc")):
        if cand and os.access(cand, os.X_OK):
            return cand
    raise QnncError("the qnnc command was not found (pip install the package, or set QNNC_EXE)")


def tune(model: Any, records: PathLike, *, trials: Optional[int] = None, time_budget: Optional[float] = None,
         input_shape: Optional[Sequence[int]] = None, example_inputs: Any = None, precision: str = "fp32",
         resume: bool = False, threads: Optional[int] = None, seed: int = 0, verbose: bool = True,
         target: str = "host", runner: str = "local", jobs: Optional[int] = None, calib_data: Optional[PathLike] = None,
         search: str = "model", history: Sequence[PathLike] = ()) -> str:
    """Tunes the model's kernels (``qnnc tune``): appends every measurement to ``records`` (JSON
    lines) and returns the per-task table. Give ``trials`` and/or ``time_budget`` (minutes).
    ``runner`` is where candidates are measured: ``"local"``, ``"ssh://user@host[:port]"`` (a
    board, with ``target="rpi4"`` for example) or ``"qemu"`` (correctness only); ``jobs``
    candidates compile in parallel; ``search`` is ``"model"`` (XGBoost cost model) or
    ``"random"``; ``history`` are earlier records files the model learns from. Give the same
    ``precision``, ``input_shape`` and ``calib_data`` as to :func:`compile`, and compile with
    ``compile(..., tuning_records=records)``."""
    import subprocess
    if trials is None and time_budget is None:
        raise QnncError("tune needs a budget: trials=N and/or time_budget=MINUTES")
    tmp = tempfile.mkdtemp(prefix="qnnc-tune-")
    try:
        path, implied = _model_path(model, example_inputs, tmp)
        cmd = [_qnnc_executable(), "tune", path, "-o", os.fspath(records), "--seed", str(int(seed))]
        shape = input_shape or implied
        if shape:
            cmd += ["--input-shape", ",".join(str(int(d)) for d in shape)]
        if precision != "fp32":
            cmd += ["--quantize", precision]
        if trials is not None:
            cmd += ["--trials", str(int(trials))]
        if time_budget is not None:
            cmd += ["--time-budget", str(float(time_budget))]
        cmd += ["--target", target, "--runner", runner, "--search", search]
        if jobs is not None:
            cmd += ["--jobs", str(int(jobs))]
        if calib_data is not None:
            cmd += ["--calib-data", os.fspath(calib_data)]
        for h in history:
            cmd += ["--history", os.fspath(h)]
        if resume:
            cmd.append("--resume")
        if threads is not None:
            cmd += ["--threads", str(int(threads))]
        if not verbose:
            cmd.append("--quiet")
        p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=None if verbose else subprocess.PIPE, text=True)
        if p.returncode != 0:
            msg = (p.stderr or "").strip().splitlines()
            raise QnncError(msg[-1].removeprefix("error: ") if msg else f"qnnc tune failed (exit {p.returncode})")
        return p.stdout
    finally:
        shutil.rmtree(tmp, True)


def load(path: PathLike) -> Module:
    """Loads a module directory written by :func:`compile` or ``qnnc compile``."""
    return Module(path)


def _model_path(model: Any, example_inputs: Any, tmp: str) -> Tuple[str, Optional[Tuple[int, ...]]]:
    """A path (or builtin: name) qnnc's loader reads, and the input shape implied by the model."""
    if isinstance(model, (str, os.PathLike)):
        return os.fspath(model), None
    if hasattr(model, "SerializeToString") and hasattr(model, "graph"):  # onnx.ModelProto
        path = os.path.join(tmp, "model.onnx")
        with open(path, "wb") as f:
            f.write(model.SerializeToString())
        return path, None
    torch = sys.modules.get("torch")
    if torch is not None and isinstance(model, torch.nn.Module):
        return _export_torch(torch, model, example_inputs, tmp)
    raise QnncError(f"cannot compile a {type(model).__name__}: pass an .onnx path, an onnx.ModelProto, "
                    "'builtin:resnet50' or a torch.nn.Module")


def _export_torch(torch: Any, model: Any, example_inputs: Any, tmp: str) -> Tuple[str, Tuple[int, ...]]:
    if example_inputs is None:
        raise QnncError("a torch.nn.Module needs example_inputs (e.g. torch.zeros(1, 3, 224, 224)) to be exported")
    if not isinstance(example_inputs, (tuple, list)):
        example_inputs = (example_inputs,)
    example_inputs = tuple(torch.as_tensor(np.asarray(x)) if isinstance(x, np.ndarray) else x for x in example_inputs)
    if len(example_inputs) != 1:
        raise QnncError(f"qnnc compiles models with one input; example_inputs has {len(example_inputs)}")
    path = os.path.join(tmp, "model.onnx")
    was_training = model.training
    model.eval()
    # Multi-head attention under no_grad runs a fused kernel the exporter does not know; with
    # gradients enabled it is traced as plain operators.
    attention = any(isinstance(m, torch.nn.MultiheadAttention) for m in model.modules())
    try:
        with torch.enable_grad() if attention else torch.no_grad():
            torch.onnx.export(model, example_inputs, path, opset_version=13, input_names=["input"],
                              output_names=["output"], do_constant_folding=True)
    except Exception as e:  # noqa: BLE001 - the exporter raises many kinds
        raise QnncError(f"exporting the torch module to ONNX failed: {e}") from e
    finally:
        model.train(was_training)
    return path, tuple(example_inputs[0].shape)


def compile(model: Any, *, input_shape: Optional[Sequence[int]] = None, example_inputs: Any = None,
            target: str = "host", precision: str = "fp32", calib_data: Any = None,
            output_dir: Optional[PathLike] = None, verbose: bool = False,
            log: Optional[Callable[[str], None]] = None, **options: Any) -> Module:
    """Compiles a model and loads it (host targets) or writes it (rpi4, rpi5).

    model: an .onnx path, an ``onnx.ModelProto``, ``"builtin:resnet18|34|50"`` or a
    ``torch.nn.Module`` (needs ``example_inputs``, a tensor or tuple of one tensor).
    input_shape: N,C,H,W (default: the model's; for a torch module, the example's).
    target: host, x86-avx2, x86-avx512, rpi4, rpi5, ... (see ``qnnc compile --help``).
    precision: fp32, int8, int4, int2, int1 or wXaY (e.g. w4a8); quantized modules are
    calibrated on ``calib_data`` (a path to .npy/.npz or a float32 NCHW array) or on seeded
    random inputs.
    output_dir: where the module directory goes (default: a temporary directory removed with
    the Module).
    verbose / log: progress lines to stderr / to a callable.
    options: as ``qnnc compile``'s flags: seed, jobs, calib_mode, calib_samples, percentile,
    global_scale, weight_scale, rounding, quantize_first_conv, quantize_dense, lowbit_edges
    ("int8", "fp32" or "same": the first convolution and dense layers in low-bit modes),
    skip_layers, knobs ({"conv2d_q": {"x_tile": 7}}), tuning_records (from :func:`tune`), report
    (write accuracy.json against fp32), report_inputs. Unknown options raise QnncError.

    Returns the loaded :class:`Module` (``.summary`` holds the compile summary). For a
    cross target the module cannot run here; it returns None after writing ``output_dir``."""
    tmp = tempfile.mkdtemp(prefix="qnnc-")
    try:
        path, implied_shape = _model_path(model, example_inputs, tmp)
        opts: Dict[str, Any] = {"target": target, "precision": precision, **options}
        shape = input_shape or implied_shape
        if shape:
            opts["input_shape"] = [int(d) for d in shape]
        if calib_data is not None:
            if isinstance(calib_data, (str, os.PathLike)):
                opts["calib_data"] = os.fspath(calib_data)
            else:
                arr = np.ascontiguousarray(np.asarray(calib_data, dtype=np.float32))
                opts["calib_data"] = os.path.join(tmp, "calib.npy")
                np.save(opts["calib_data"], arr)
        owned = None
        if output_dir is None:
            if target != "host" and not target.startswith("x86"):
                raise QnncError(f"target {target!r} builds a bundle for another machine: give output_dir")
            owned = tempfile.mkdtemp(prefix="qnnc-module-")
            out = owned
        else:
            out = os.fspath(output_dir)
        progress = None
        if log is None and verbose:
            log = lambda s: print("qnnc: " + s, file=sys.stderr, flush=True)  # noqa: E731
            progress = _Progress()
        try:
            summary = json.loads(_qnnc.compile_json(path, out, json.dumps(opts), log, progress))
        except BaseException:
            if owned:
                shutil.rmtree(owned, True)
            raise
        finally:
            if progress:
                progress.close()
    finally:
        shutil.rmtree(tmp, True)
    with open(os.path.join(out, "graph.json")) as f:
        if not json.load(f).get("target_is_host", True):
            return None  # a bundle for another machine (qnnc emulate runs it under QEMU)
    m = Module(out, _owned_dir=owned)
    m.summary = summary
    return m
