#!/usr/bin/env python3
"""`pip install` of the qnnc package into a new, empty virtual environment, then use it as a
PyTorch user would, from a directory that is not the source tree and without PYTHONPATH.

Builds the wheel from the source tree (`pip wheel`, scikit-build-core; incremental in
build/py-*), creates a venv that sees only Debian's system packages (torch and torchvision come
from there; qnnc, halide, numpy's wheel deps and plotly are installed by pip from the wheel's
requirements), installs the wheel, and in that venv:
  - compiles a torchvision ResNet-18 given as a torch.nn.Module and compares its output with
    PyTorch's (relative L2 error <= 1e-4);
  - calls the module with a numpy array and with a torch tensor (DLPack);
  - compiles int8 and benchmarks it; the `qnnc` command installed beside it runs.
Ends with 'N passed, M failed'."""
import argparse
import glob
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))

USER_SCRIPT = textwrap.dedent("""
    import json, os, sys
    import numpy as np, torch, torchvision
    import qnnc
    r = {"package": qnnc.__file__}
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=100).eval()
    x = torch.randn(1, 3, 96, 96)
    with torch.no_grad():
        ref = net(x).numpy()
    m = qnnc.compile(net, example_inputs=x)
    y_np = m(x.numpy())
    y_dl = m(x)
    r["rel_l2"] = float(np.linalg.norm(y_np - ref) / np.linalg.norm(ref))
    r["dlpack_equal"] = bool(np.array_equal(y_np, y_dl))
    q = qnnc.compile(net, example_inputs=x, precision="int8")
    r["int8_cosine"] = float(np.dot(q(x).ravel(), ref.ravel()) / np.linalg.norm(q(x)) / np.linalg.norm(ref))
    r["bench"] = {p: mod.benchmark(repeat=5, threads=2)["median_ms"] for p, mod in (("fp32", m), ("int8", q))}
    print("RESULT " + json.dumps(r))
""")


def main():
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--workdir", default=None)
    ap.add_argument("--python", default=sys.executable, help="Python with pip, scikit-build-core and nanobind (the "
                    "set-up's .venv) that builds the wheel")
    args = ap.parse_args()
    work = args.workdir or tempfile.mkdtemp(prefix="qnnc-wheel-")
    shutil.rmtree(work, ignore_errors=True)
    os.makedirs(work)
    results = []

    def check(name, ok, detail=""):
        results.append(bool(ok))
        print(f"{'PASS' if ok else 'FAIL'}  {name}  {detail}", flush=True)

    def run(cmd, **kw):
        shown = [c if "\n" not in c else "<script>" for c in cmd]
        print("$ " + " ".join(shown), flush=True)
        return subprocess.run(cmd, capture_output=True, text=True, **kw)

    dist = os.path.join(work, "dist")
    p = run([args.python, "-m", "pip", "wheel", "--no-build-isolation", "--no-deps", "-w", dist, ROOT])
    wheels = glob.glob(os.path.join(dist, "qnnc-*.whl"))
    check("pip wheel builds the package", p.returncode == 0 and len(wheels) == 1, (p.stdout + p.stderr)[-600:])
    if not wheels:
        return 1
    venv = os.path.join(work, "venv")
    # --system-site-packages: Debian's torch/torchvision (the models a user brings); nothing of
    # qnnc's is there.
    p = run(["/usr/bin/python3", "-m", "venv", "--system-site-packages", venv])
    check("fresh venv", p.returncode == 0, p.stderr[-300:])
    py = os.path.join(venv, "bin", "python")
    pre = run([py, "-c", "import qnnc"], cwd=work)
    check("the fresh venv has no qnnc before the install", pre.returncode != 0)
    # numpy<2: Debian's torch 1.13 was built against numpy 1.x.
    p = run([py, "-m", "pip", "install", "-q", wheels[0], "numpy<2"])
    check("pip install of the wheel (dependencies from the index)", p.returncode == 0, (p.stdout + p.stderr)[-800:])
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QNNC_LIB", "QNNC_PYTHON")}
    user_dir = os.path.join(work, "elsewhere")
    os.makedirs(user_dir)
    p = run([py, "-c", USER_SCRIPT], cwd=user_dir, env=env)
    out = [ln for ln in p.stdout.splitlines() if ln.startswith("RESULT ")]
    if p.returncode != 0 or not out:
        check("user script ran", False, (p.stdout + p.stderr)[-1500:])
    else:
        import json
        r = json.loads(out[0][7:])
        check("import qnnc from the venv's site-packages, not the source tree",
              r["package"].startswith(venv) and "site-packages" in r["package"], r["package"])
        check("ResNet-18 from a torch.nn.Module matches PyTorch (rel L2 <= 1e-4)", r["rel_l2"] <= 1e-4,
              f"{r['rel_l2']:.2e}")
        check("a torch tensor through DLPack gives the numpy call's output", r["dlpack_equal"])
        check("int8 runs and follows fp32 (cosine > 0.9)", r["int8_cosine"] > 0.9, f"{r['int8_cosine']:.4f}")
        check("benchmark times both", all(v > 0 for v in r["bench"].values()),
              ", ".join(f"{k} {v:.2f} ms" for k, v in r["bench"].items()))
    qnnc_cli = os.path.join(venv, "bin", "qnnc")
    p = run([qnnc_cli, "--help"], cwd=user_dir, env=env)
    check("the qnnc command is installed beside it", p.returncode == 0 and "compile" in p.stdout, p.stderr[-300:])
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
