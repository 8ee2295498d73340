#!/usr/bin/env python3
"""The HTML report (python/qnnc/report.py) in a real browser: compiles the builtin ResNet-18 at
1x3x64x64 in fp32 and int8 (the int8 with --report, so it has accuracy.json), gathers both
modules through the Python API (profile, kernel code), renders one report and opens it in
headless Chromium (playwright).

Asserts: no console or page error and no network request; every chart drawn (each plotly div
holds an svg with a non-zero size and bars, as many charts as expected: the comparison, one time
chart per module, one SQNR chart per module with per-layer SQNR in accuracy.json); one closed
<details> per distinct kernel, each with its loop nest and assembly (closed too); the comparison
table lists both modules (with the int8 SQNR when accuracy.json exists); one layers table per
module with a row per step; plotly.js inlined once; nothing in a <pre> parsed as markup. Saves
report.html and a full-page screenshot report.png in --out. Ends with 'N passed, M failed'.

Needs playwright and a Chromium (scripts/setup.sh installs both). Example:
    .venv/bin/python tests/python/check_report.py --qnnc build/qnnc --out out/check_report
"""
from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

REPO = Path(__file__).resolve().parents[2]
MODEL = "builtin:resnet18"
SHAPE = "1,3,64,64"
INSTALL_HINT = ("run scripts/setup.sh, or install them by hand: `.venv/bin/pip install playwright` and "
                "either `apt-get install chromium` (used from /usr/bin/chromium) or "
                "`.venv/bin/playwright install chromium`; QNNC_CHROMIUM=/path/to/chrome picks another browser")

Check = Callable[..., None]


def import_report():
    """qnnc.report: from the installed package, else from this repository's python/ directory."""
    try:
        from qnnc import report
    except ImportError:
        for k in [k for k in sys.modules if k == "qnnc" or k.startswith("qnnc.")]:
            del sys.modules[k]
        sys.path.insert(0, str(REPO / "python"))
        from qnnc import report
    return report


def compile_modules(qnnc: str, out: Path, timeout: float) -> dict[str, Path]:
    dirs = {}
    for prec in ("fp32", "int8"):
        d = out / f"r18_{prec}"
        cmd = [qnnc, "compile", MODEL, "-o", str(d), "--input-shape", SHAPE, "-q"]
        if prec != "fp32":
            cmd += ["--quantize", prec, "--report"]
        t0 = time.perf_counter()
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
        if p.returncode != 0:
            raise RuntimeError(f"{' '.join(cmd)} failed ({p.returncode}):\n{p.stdout}\n{p.stderr}")
        print(f"compiled {d.name} in {time.perf_counter() - t0:.1f} s")
        dirs[prec] = d
    return dirs


def expectations(mods: list[dict], report) -> dict:
    """What the page must show, from the gathered modules (not from the HTML)."""
    sqnr = [m["label"] for m in mods
            if any(isinstance(l, dict) and l.get("sqnr_db") is not None
                   for l in ((m.get("accuracy") or {}).get("layers") or []))]
    models = {m["manifest"].get("model") for m in mods}
    return {
        "labels": [m["label"] for m in mods],
        "charts": (1 if len(mods) > 1 and len(models) == 1 else 0)
        + sum(1 for m in mods if (m.get("profile") or {}).get("rows")) + len(sqnr),
        "sqnr_modules": sqnr,
        "kernels": sum(len(report.distinct_kernels(m["manifest"])) for m in mods),
        "steps": [len(m["manifest"]["steps"]) for m in mods],
        "accuracy": {m["label"]: bool((m.get("accuracy") or {}).get("centered")) for m in mods},
    }


_PAGE_STATE = """() => {
  const charts = Array.from(document.querySelectorAll('div.qnnc-chart')).map(d => {
    const svg = d.querySelector('svg.main-svg');
    const r = svg ? svg.getBoundingClientRect() : {width: 0, height: 0};
    return {id: d.id, kind: d.dataset.chart, w: r.width, h: r.height,
            bars: d.querySelectorAll('g.trace.bars g.point path').length};
  });
  const details = Array.from(document.querySelectorAll('details')).map(d => ({
    kernel: d.classList.contains('kernel'), open: d.open,
    pre: d.classList.contains('kernel') ? d.querySelectorAll(':scope > details.code > pre').length : 0,
    text: d.classList.contains('kernel') ? Array.from(d.querySelectorAll(':scope > details.code > pre'))
      .map(p => p.textContent.length) : []}));
  const comparison = Array.from(document.querySelectorAll('table.comparison tr[data-module]')).map(tr => ({
    module: tr.dataset.module, cells: Array.from(tr.cells).map(c => c.textContent.trim())}));
  const layers = Array.from(document.querySelectorAll('table.layers')).map(t => t.rows.length - 1);
  return {charts, details, comparison, layers, preMarkup: document.querySelectorAll('pre *').length,
          plotly: typeof window.Plotly === 'object'};
}"""


def check_page(html_path: Path, png_path: Path, expect: dict, check: Check, timeout_ms: int = 60000) -> None:
    """Opens the report in headless Chromium and checks what it shows."""
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        check("playwright is installed", False, f"`import playwright` failed: {INSTALL_HINT}")
        return
    text = html_path.read_text(encoding="utf-8")
    check("plotly.js inlined once", text.count("* plotly.js v") == 1 and "<script src" not in text,
          f"{text.count('* plotly.js v')} copies")
    errors: list[str] = []
    requests: list[str] = []
    exe = os.environ.get("QNNC_CHROMIUM") or next(
        (p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome")) if p), None)
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        except Exception as e:  # noqa: BLE001 - the message says what to install
            check("headless Chromium starts", False,
                  f"{str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__}; {INSTALL_HINT}")
            return
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.on("console", lambda m: errors.append(f"console.{m.type}: {m.text}") if m.type == "error" else None)
            page.on("pageerror", lambda e: errors.append(f"page error: {e}"))

            def route(r):
                if r.request.url.startswith(("file:", "data:", "blob:", "about:")):
                    r.continue_()
                else:
                    requests.append(r.request.url)
                    r.abort()

            page.route("**/*", route)
            t0 = time.perf_counter()
            page.goto(html_path.resolve().as_uri(), wait_until="load", timeout=timeout_ms)
            try:
                page.wait_for_function(
                    "() => Array.from(document.querySelectorAll('div.qnnc-chart'))"
                    ".every(d => d.querySelector('svg.main-svg g.trace'))", timeout=timeout_ms)
            except Exception as e:  # noqa: BLE001 - reported by the chart checks below
                errors.append(f"charts not all drawn within {timeout_ms} ms: {type(e).__name__}")
            t_load = time.perf_counter() - t0
            s = page.evaluate(_PAGE_STATE)
            page.screenshot(path=str(png_path), full_page=True)
        finally:
            browser.close()

    check("no console or page errors", not errors, "; ".join(errors[:5]))
    check("no network requests", not requests, ", ".join(requests[:5]))
    check("plotly.js loaded", s["plotly"], f"page ready in {t_load:.1f} s")
    charts = s["charts"]
    kinds = ", ".join(f"{c['kind']}" for c in charts)
    check("as many charts as expected", len(charts) == expect["charts"],
          f"{len(charts)} charts ({kinds}), expected {expect['charts']}")
    bad = [c for c in charts if not (c["w"] > 0 and c["h"] > 0 and c["bars"] > 0)]
    check("every chart drawn (svg with a size, bars)", charts and not bad,
          "; ".join(f"{c['id']} ({c['kind']}): {c['w']:.0f}x{c['h']:.0f} px, {c['bars']} bars" for c in bad))
    n_sqnr = sum(c["kind"] == "sqnr" for c in charts)
    if expect["sqnr_modules"]:
        check("SQNR chart for each module with per-layer SQNR", n_sqnr == len(expect["sqnr_modules"]),
              f"{n_sqnr} SQNR charts for {expect['sqnr_modules']}")
    else:
        print("note: no accuracy.json with per-layer SQNR (qnnc compile --report does not write it yet): "
              "SQNR chart not checked")
    kern = [d for d in s["details"] if d["kernel"]]
    check("one <details> per distinct kernel", len(kern) == expect["kernels"],
          f"{len(kern)}, expected {expect['kernels']}")
    check("all <details> closed", s["details"] and not any(d["open"] for d in s["details"]),
          f"{sum(d['open'] for d in s['details'])} of {len(s['details'])} open")
    empty = [k for k, d in enumerate(kern) if d["pre"] != 2 or not all(n > 0 for n in d["text"])]
    check("each kernel has its loop nest and assembly", kern and not empty,
          f"{len(empty)} kernels without both texts")
    check("kernel text escaped (no markup inside <pre>)", s["preMarkup"] == 0, f"{s['preMarkup']} elements")
    listed = [r["module"] for r in s["comparison"]]
    check("comparison table lists the modules", sorted(listed) == sorted(expect["labels"]),
          f"{listed}, expected {expect['labels']}")
    for r in s["comparison"]:
        if expect["accuracy"].get(r["module"]):
            # module, precision, latency, speed-up, weights, size, centered SQNR, ...
            check(f"comparison shows the SQNR of {r['module']}", len(r["cells"]) > 6 and r["cells"][6] != "—",
                  f"cells {r['cells'][:8]}")
    check("a layers table per module, a row per step", s["layers"] == expect["steps"],
          f"{s['layers']}, expected {expect['steps']}")
    check("screenshot saved", png_path.is_file() and png_path.stat().st_size > 10000,
          f"{png_path} ({png_path.stat().st_size / 1e3:.0f} kB)" if png_path.is_file() else str(png_path))


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--qnnc", required=True, help="path to the qnnc binary")
    ap.add_argument("--out", default=None, help="directory for the modules, report.html and report.png "
                                                "(default: a temporary one)")
    ap.add_argument("--threads", type=int, default=0, help="profiling threads (default: all cores)")
    ap.add_argument("--repeat", type=int, default=5, help="profile runs (default: %(default)s)")
    ap.add_argument("--timeout", type=float, default=900, help="seconds allowed for each qnnc command")
    args = ap.parse_args(argv)
    out = Path(args.out or tempfile.mkdtemp(prefix="qnnc-report-"))
    out.mkdir(parents=True, exist_ok=True)
    results: list[bool] = []

    def check(name: str, ok, detail: str = "") -> None:
        results.append(bool(ok))
        print(f"{'PASS' if ok else 'FAIL'}  {name}  {detail}")

    try:
        dirs = compile_modules(args.qnnc, out, args.timeout)
        if not (dirs["int8"] / "accuracy.json").is_file():
            print("note: qnnc compile --report wrote no r18_int8/accuracy.json: accuracy checks skipped")
        report = import_report()
        mods = []
        for prec in ("fp32", "int8"):
            t0 = time.perf_counter()
            m = report.gather(dirs[prec], profile_repeat=args.repeat, threads=args.threads, code=True)
            print(f"gathered {m['label']} in {time.perf_counter() - t0:.1f} s")
            rows = (m.get("profile") or {}).get("rows") or []
            check(f"{prec}: profile has a row per kernel step",
                  len(rows) == sum(1 for s in m["manifest"]["steps"] if not s.get("alias")),
                  m.get("profile_error") or f"{len(rows)} rows, total {(m.get('profile') or {}).get('total_ms')} ms")
            errs = [v for e in m["code"].values() for k, v in e.items() if k.endswith("_error")]
            check(f"{prec}: stmt and asm of every kernel", len(m["code"]) == len(report.distinct_kernels(m["manifest"]))
                  and not errs, errs[0] if errs else f"{len(m['code'])} kernels")
            mods.append(m)
        t0 = time.perf_counter()
        page = report.render(mods, title="check_report: resnet18 fp32 vs int8")
        html_path = out / "report.html"
        html_path.write_text(page, encoding="utf-8")
        print(f"rendered {html_path} ({len(page.encode()) / 1e6:.1f} MB) in {time.perf_counter() - t0:.1f} s")
        check_page(html_path, out / "report.png", expectations(mods, report), check)
    except (RuntimeError, OSError, ImportError, subprocess.TimeoutExpired) as e:
        check("report built", False, str(e))
    passed = sum(results)
    print(f"{passed} passed, {len(results) - passed} failed")
    return 0 if results and passed == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
