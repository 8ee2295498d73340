"""qnnc from Python: compile models into modules and call them with numpy arrays.

    import numpy as np, qnnc
    qnnc.compile("builtin:resnet18", "out/r18", input_shape=(1, 3, 224, 224), precision="int8")
    m = qnnc.load("out/r18")
    y = m(np.random.default_rng(0).standard_normal(m.input_shape, dtype=np.float32))

A thin ctypes layer over libqnnc_c.so (src/capi/qnnc_c.h); set QNNC_LIB to its path if it is
not in the build/ directory next to this package's repository.
"""
from __future__ import annotations

import ctypes
import json
import os
import statistics
import time
from pathlib import Path

import numpy as np

__all__ = ["compile", "load", "Module", "QnncError"]


class QnncError(RuntimeError):
    """A qnnc call failed; the message says why."""


def _find_library() -> str:
    env = os.environ.get("QNNC_LIB")
    if env:
        return env
    here = Path(__file__).resolve().parent
    for cand in (here.parent.parent / "build" / "libqnnc_c.so", here / "libqnnc_c.so"):
        if cand.exists():
            return str(cand)
    raise QnncError("libqnnc_c.so not found: build qnnc (scripts/setup.sh) or set QNNC_LIB")


_lib = ctypes.CDLL(_find_library())
_i64p = ctypes.POINTER(ctypes.c_int64)
_f32p = ctypes.POINTER(ctypes.c_float)
_lib.qnnc_last_error.restype = ctypes.c_char_p
_lib.qnnc_compile.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, _i64p,
                              ctypes.c_int, ctypes.c_uint64]
_lib.qnnc_compile_json.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p]
_lib.qnnc_module_load.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p)]
_lib.qnnc_module_free.argtypes = [ctypes.c_void_p]
_lib.qnnc_module_set_threads.argtypes = [ctypes.c_void_p, ctypes.c_int]
for _f in (_lib.qnnc_module_input_shape, _lib.qnnc_module_output_shape):
    _f.argtypes = [ctypes.c_void_p, ctypes.c_int, _i64p, ctypes.POINTER(ctypes.c_int)]
_lib.qnnc_module_run.argtypes = [ctypes.c_void_p, _f32p, ctypes.c_int64, _f32p, ctypes.c_int64]
_lib.qnnc_module_manifest.argtypes = [ctypes.c_void_p]
_lib.qnnc_module_manifest.restype = ctypes.c_char_p


def _check(rc: int) -> None:
    if rc != 0:
        raise QnncError(_lib.qnnc_last_error().decode())


def compile(model: str, out_dir: str, *, input_shape=None, precision: str = "fp32", target: str = "host",
            seed: int = 0, **options) -> str:
    """Compiles model ("builtin:resnet50" or an .onnx path) into the module directory out_dir.

    precision: fp32, int8, int4, int2, int1 or wXaY; target: host, x86-avx2, rpi4, rpi5.
    Quantization options, as on the command line: calib_mode (minmax, percentile,
    kl_divergence, global_scale), calib_data (.npy/.npz path), calib_samples, percentile,
    global_scale, weight_scale (channel_max, power2), rounding (upward, tonearest),
    quantize_first_conv (bool), quantize_dense (bool), skip_layers (list of node names);
    knobs ({"conv2d_q": {"x_tile": 7}}). Unknown options raise QnncError. Returns out_dir."""
    opts = {"precision": precision, "target": target, "seed": int(seed), **options}
    if input_shape:
        opts["input_shape"] = [int(d) for d in input_shape]
    _check(_lib.qnnc_compile_json(model.encode(), str(out_dir).encode(), json.dumps(opts).encode()))
    return str(out_dir)


class Module:
    """A compiled module loaded into this process; call it with a float32 NCHW array.

    Calls may come from several threads at once: the C call releases the GIL and the runtime
    gives each concurrent call its own activation memory (a small pool of execution contexts),
    so the outputs are those of sequential calls."""

    def __init__(self, path: str):
        self._h = ctypes.c_void_p()
        _check(_lib.qnnc_module_load(str(path).encode(), ctypes.byref(self._h)))
        self.path = str(path)
        self.input_shape = self._shape(_lib.qnnc_module_input_shape)
        self.output_shape = self._shape(_lib.qnnc_module_output_shape)

    def _shape(self, fn) -> tuple:
        dims, rank = (ctypes.c_int64 * 8)(), ctypes.c_int()
        _check(fn(self._h, 0, dims, ctypes.byref(rank)))
        return tuple(dims[: rank.value])

    @property
    def manifest(self) -> dict:
        """The execution plan (graph.json): steps, kernels, values."""
        return json.loads(_lib.qnnc_module_manifest(self._h).decode())

    def set_threads(self, n: int) -> None:
        """Threads for the kernels (<= 0: all cores)."""
        _check(_lib.qnnc_module_set_threads(self._h, n))

    def __call__(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x)
        if x.dtype != np.float32:
            raise QnncError(f"input dtype {x.dtype}: qnnc modules take float32 (x.astype(np.float32))")
        if tuple(x.shape) != self.input_shape:
            raise QnncError(f"input shape {tuple(x.shape)}, the module was compiled for {self.input_shape}")
        x = np.ascontiguousarray(x)
        y = np.empty(self.output_shape, dtype=np.float32)
        _check(_lib.qnnc_module_run(self._h, x.ctypes.data_as(_f32p), x.size, y.ctypes.data_as(_f32p), y.size))
        return y

    def benchmark(self, repeat: int = 20, warmup: int = 3, seed: int = 0) -> dict:
        """Median/min/max milliseconds of a call on a seeded random input."""
        x = np.random.default_rng(seed).standard_normal(self.input_shape, dtype=np.float32)
        for _ in range(warmup):
            self(x)
        ms = []
        for _ in range(repeat):
            t0 = time.perf_counter()
            self(x)
            ms.append((time.perf_counter() - t0) * 1e3)
        return {"median_ms": statistics.median(ms), "min_ms": min(ms), "max_ms": max(ms)}

    def __del__(self):
        if getattr(self, "_h", None):
            _lib.qnnc_module_free(self._h)
            self._h = None


def load(path: str) -> Module:
    """Loads a module directory written by compile() or `qnnc compile`."""
    return Module(path)
