"""Seed corpora for qnnc's libFuzzer targets (tests/fuzz), written at build/test time.

  make_seeds.py OUT_DIR

writes OUT_DIR/onnx/*.onnx (small models, every operator and attribute form the importer
lowers), OUT_DIR/npy/*.npy|*.npz (header versions, shapes, np.savez archives) and
OUT_DIR/module_model.onnx, the small model that run_fuzz.sh compiles with qnnc into the module
whose graph.json seeds the module loader's fuzzer. Deterministic (seeded), a few kB in all.
"""

from __future__ import annotations

import io
import os
import sys

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

RNG = np.random.default_rng(0)


def const(name: str, *shape: int) -> TensorProto:
    return numpy_helper.from_array(RNG.standard_normal(shape).astype(np.float32), name)


def i64(name: str, values) -> TensorProto:
    return numpy_helper.from_array(np.array(values, dtype=np.int64), name)


def model(nodes, inits, in_shape, out="y", opset=13, inputs_extra=(), name="g") -> onnx.ModelProto:
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, list(in_shape))
    y = helper.make_tensor_value_info(out, TensorProto.FLOAT, None)
    g = helper.make_graph(nodes, name, [x, *inputs_extra], [y], initializer=inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 7
    return m


def onnx_seeds() -> dict[str, onnx.ModelProto]:
    N = helper.make_node
    s = {}
    # Conv (bias, pads, strides, dilation) + Relu + MaxPool + GlobalAveragePool + Flatten + Gemm.
    s["cnn"] = model(
        [N("Conv", ["x", "w", "b"], ["c"], name="conv", pads=[1, 1, 1, 1], strides=[1, 1],
           kernel_shape=[3, 3], dilations=[1, 1], group=1),
         N("Relu", ["c"], ["r"], name="relu"),
         N("MaxPool", ["r"], ["p"], name="pool", kernel_shape=[2, 2], strides=[2, 2]),
         N("GlobalAveragePool", ["p"], ["g"], name="gap"),
         N("Flatten", ["g"], ["f"], name="flat", axis=1),
         N("Gemm", ["f", "fw", "fb"], ["y"], name="fc", transB=1, alpha=1.0, beta=1.0)],
        [const("w", 4, 3, 3, 3), const("b", 4), const("fw", 5, 4), const("fb", 5)], [1, 3, 8, 8])
    # auto_pad SAME_UPPER / VALID, ceil_mode, AveragePool, BatchNormalization, Add (residual).
    s["resblock"] = model(
        [N("Conv", ["x", "w1"], ["c1"], auto_pad="SAME_UPPER", strides=[2, 2]),
         N("BatchNormalization", ["c1", "sc", "bi", "mu", "va"], ["n1"], epsilon=1e-5),
         N("Relu", ["n1"], ["r1"]),
         N("Conv", ["r1", "w2"], ["c2"], auto_pad="SAME_LOWER"),
         N("Add", ["c2", "r1"], ["a"]),
         N("AveragePool", ["a"], ["p"], kernel_shape=[3, 3], strides=[2, 2], pads=[1, 1, 1, 1],
           ceil_mode=1, count_include_pad=0),
         N("MaxPool", ["p"], ["y"], kernel_shape=[2, 2], auto_pad="VALID")],
        [const("w1", 4, 3, 3, 3), const("sc", 4), const("bi", 4), const("mu", 4),
         numpy_helper.from_array(np.ones(4, np.float32), "va"), const("w2", 4, 4, 3, 3)],
        [1, 3, 9, 11], opset=15)
    # MatMul + Add folded into a Gemm; Reshape with a Constant shape; Identity and Dropout.
    s["dense"] = model(
        [N("Constant", [], ["shape"], value=i64("shape_v", [1, -1])),
         N("Reshape", ["x", "shape"], ["f"]),
         N("Identity", ["f"], ["i"]),
         N("Dropout", ["i"], ["d"]),
         N("MatMul", ["d", "mw"], ["m"]),
         N("Add", ["m", "mb"], ["y"])],
        [const("mw", 12, 6), const("mb", 6)], [1, 3, 2, 2], opset=17)
    # Gemm without transB, scaled; Reshape with a 0 (copy) entry from an initializer; a symbolic
    # batch dimension; Constant value_float(s) / value_ints forms.
    s["gemm"] = model(
        [N("Reshape", ["x", "rs"], ["f"]),
         N("Constant", [], ["cb"], value_floats=[0.5, 0.25, 0.125]),
         N("Constant", [], ["unused_i"], value_ints=[1, 2]),
         N("Constant", [], ["unused_f"], value_float=2.0),
         N("Gemm", ["f", "gw", "cb"], ["y"], alpha=0.5, beta=2.0)],
        [i64("rs", [0, -1]), const("gw", 8, 3)], ["batch", 2, 4], opset=11)
    # Raw little-endian data vs. typed fields; weights listed as graph inputs (old exporters).
    w = const("w", 2, 1, 1, 1)
    w_typed = helper.make_tensor("w", TensorProto.FLOAT, [2, 1, 1, 1], RNG.standard_normal(2).tolist())
    s["raw_vs_typed"] = model(
        [N("Conv", ["x", "w"], ["y"], kernel_shape=[1, 1])], [w_typed], [1, 1, 3, 3], opset=7,
        inputs_extra=[helper.make_tensor_value_info("w", TensorProto.FLOAT, [2, 1, 1, 1])])
    s["raw"] = model([N("Conv", ["x", "w"], ["y"])], [w], [1, 1, 3, 3], opset=21)
    # Errors the importer reports: unsupported op, grouped conv, int64 misuse.
    s["unsupported"] = model([N("Sigmoid", ["x"], ["y"], name="sig")], [], [1, 4])
    s["grouped"] = model([N("Conv", ["x", "w"], ["y"], group=2)], [const("w", 2, 1, 1, 1)], [1, 2, 3, 3])
    return s


def npy_bytes(a: np.ndarray) -> bytes:
    f = io.BytesIO()
    np.save(f, a, allow_pickle=False)
    return f.getvalue()


def npy_seeds() -> dict[str, bytes]:
    s = {
        "scalar.npy": npy_bytes(np.float32(1.5)),
        "vec.npy": npy_bytes(RNG.standard_normal(5).astype(np.float32)),
        "img.npy": npy_bytes(RNG.standard_normal((1, 3, 2, 2)).astype(np.float32)),
        "empty.npy": npy_bytes(np.zeros((0, 3), np.float32)),
        "f64.npy": npy_bytes(np.zeros(2, np.float64)),
        "fortran.npy": npy_bytes(np.asfortranarray(np.zeros((2, 3), np.float32))),
    }
    # Version 2.0 header (4-byte length), as numpy writes for very long headers.
    f = io.BytesIO()
    np.lib.format.write_array(f, np.arange(3, dtype=np.float32), version=(2, 0))
    s["v2.npy"] = f.getvalue()
    f = io.BytesIO()
    np.savez(f, a=np.zeros((2, 2), np.float32), b=np.ones(3, np.float32))
    s["two.npz"] = f.getvalue()
    return s


def main() -> None:
    out = sys.argv[1]
    os.makedirs(os.path.join(out, "onnx"), exist_ok=True)
    os.makedirs(os.path.join(out, "npy"), exist_ok=True)
    seeds = onnx_seeds()
    for name, m in seeds.items():
        with open(os.path.join(out, "onnx", name + ".onnx"), "wb") as f:
            f.write(m.SerializeToString())
    for name, b in npy_seeds().items():
        with open(os.path.join(out, "npy", name), "wb") as f:
            f.write(b)
    with open(os.path.join(out, "module_model.onnx"), "wb") as f:
        f.write(seeds["cnn"].SerializeToString())


if __name__ == "__main__":
    main()
