"""A self-contained HTML report of compiled qnnc modules: where the time goes, how close each
kernel comes to the machine's peak, what quantization did to size, speed and accuracy, and the
code Halide generated for every kernel.

    python -m qnnc.report out/r18_fp32 out/r18_int8 out/r18_int4 -o report.html

From Python:

    from qnnc import report
    mods = [report.gather(d) for d in ("out/r18_fp32", "out/r18_int8")]
    open("report.html", "w", encoding="utf-8").write(report.render(mods))

gather() reads a module directory: graph.json (the execution plan), profile.json when present
(else it profiles the module through qnnc.load(dir).profile()), accuracy.json and eval.json when
present, and the lowered loop nest and assembly of each distinct kernel (qnnc Module.inspect()).
render() turns a list of gathered modules into one HTML file with plotly.js inlined once: it needs
no network and no other file. Every string taken from the modules is HTML-escaped.
"""
from __future__ import annotations

import argparse
import datetime
import html
import json
import math
import os
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Optional

__all__ = ["gather", "render", "main", "distinct_kernels"]

#: Version of the dict gather() returns (and render() reads).
SCHEMA = 1

#: Longest kernel text (stmt or asm) kept in a report, in characters; longer ones are cut.
MAX_CODE_CHARS = 1_500_000

_PRECISION_COLORS = {
    "fp32": "#4c78a8", "f32": "#4c78a8", "int8": "#f58518", "w8a8": "#f58518",
    "w4a8": "#b279a2", "w4a4": "#54a24b", "int4": "#54a24b", "w2a2": "#eeca3b", "int2": "#eeca3b",
    "binary": "#e45756", "w1a1": "#e45756", "int1": "#e45756",
}
_OTHER_COLORS = ["#72b7b2", "#ff9da6", "#9d755d", "#bab0ac", "#17becf", "#8c564b"]
_MODULE_COLORS = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#b279a2", "#72b7b2", "#eeca3b",
                  "#ff9da6", "#9d755d", "#bab0ac"]


# --------------------------------------------------------------------------------------------
# gather


def _read_json(path: Path) -> Optional[dict]:
    if not path.is_file():
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def _label(directory: Path) -> str:
    name = directory.resolve().name
    return name[: -len(".qnnc")] if name.endswith(".qnnc") and len(name) > 5 else name


def distinct_kernels(manifest: dict) -> list[tuple[str, list[int]]]:
    """The distinct kernels of a plan, in order of first use: (fn, indices of the steps using it)."""
    order: dict[str, list[int]] = {}
    for i, s in enumerate(manifest.get("steps", [])):
        fn = s.get("fn")
        if s.get("alias") or not fn:
            continue
        order.setdefault(fn, []).append(i)
    return list(order.items())


def gather(dir: str | os.PathLike, *, profile_repeat: int = 10, threads: int = 0, code: bool = True,
           log: Callable[[str], Any] = print) -> dict:
    """Collects what render() shows about the module directory `dir`.

    Reads graph.json (required), accuracy.json and eval.json (optional). Takes the profile from
    DIR/profile.json when it exists and was measured with `threads` threads (any count when
    threads <= 0), else measures it with qnnc.load(dir).profile(repeat=profile_repeat, warmup=2,
    threads=threads). With code=True also fetches Module.inspect(step, "stmt") and (step, "asm")
    once per distinct kernel (steps sharing a kernel function share its text): about a second a
    kernel, with progress lines through `log`. A failing profile or inspect call does not stop
    the report: its message is kept and shown in place of the missing part."""
    d = Path(dir)
    manifest = _read_json(d / "graph.json")
    if manifest is None:
        raise FileNotFoundError(f"{d}: no graph.json there (not a qnnc module directory)")
    label = _label(d)
    loaded: list = []  # the qnnc.Module, or the exception loading it raised

    def module():
        if not loaded:
            try:
                import qnnc  # lazily: report.py must import without the library

                loaded.append(qnnc.load(str(d)))
            except Exception as e:  # noqa: BLE001 - raised again below, and at every later call
                loaded.append(e)
        if isinstance(loaded[0], Exception):
            raise loaded[0]
        return loaded[0]

    out: dict[str, Any] = {
        "schema": SCHEMA, "dir": str(d.resolve()), "label": label, "manifest": manifest,
        "profile": None, "profile_error": None,
        "accuracy": _read_json(d / "accuracy.json"), "eval": _read_json(d / "eval.json"),
        "code": {}, "code_gathered": bool(code),
        "gathered": datetime.datetime.now().isoformat(timespec="seconds"),
    }

    saved = _read_json(d / "profile.json")
    if saved is not None and (threads <= 0 or saved.get("threads") == threads):
        out["profile"] = saved
        log(f"report: {label}: profile from {d / 'profile.json'}")
    else:
        log(f"report: {label}: profiling ({profile_repeat} runs"
            f"{f', {threads} threads' if threads > 0 else ''})")
        t0 = time.perf_counter()
        try:
            out["profile"] = module().profile(repeat=profile_repeat, warmup=2, threads=threads)
            log(f"report: {label}: profiled in {time.perf_counter() - t0:.1f} s")
        except Exception as e:  # noqa: BLE001 - a cross-compiled module, a missing library, ...
            out["profile_error"] = f"{type(e).__name__}: {e}"
            log(f"report: {label}: no profile: {out['profile_error']}")

    if code:
        kernels = distinct_kernels(manifest)
        steps = manifest.get("steps", [])
        t0 = time.perf_counter()
        for k, (fn, users) in enumerate(kernels, 1):
            entry: dict[str, str] = {}
            for what in ("stmt", "asm"):
                try:
                    text = module().inspect(steps[users[0]]["name"], what=what)
                    entry[what] = text if isinstance(text, str) else str(text)
                except Exception as e:  # noqa: BLE001 - shown in the report instead of the text
                    entry[what + "_error"] = f"{type(e).__name__}: {e}"
            out["code"][fn] = entry
            errors = [entry[w] for w in ("stmt_error", "asm_error") if w in entry]
            if loaded and isinstance(loaded[0], Exception):  # not loadable here: no use trying each kernel
                for fn2, _ in kernels[k:]:
                    out["code"][fn2] = dict(entry)
                log(f"report: {label}: no kernel code: {errors[0]}")
                break
            log(f"report: {label}: code {k}/{len(kernels)} kernels"
                + (f" ({time.perf_counter() - t0:.0f} s)" if k == len(kernels) else "")
                + (f" - {errors[0]}" if errors else ""))
    return out


# --------------------------------------------------------------------------------------------
# helpers for render


def _esc(x: Any) -> str:
    return html.escape("" if x is None else str(x), quote=True)


def _pesc(x: Any) -> str:
    """Text for plotly (tick labels, hover): its pseudo-HTML decodes &lt; &gt; &amp; but not &quot;."""
    return html.escape("" if x is None else str(x), quote=False)


def _num(x: Any) -> Optional[float]:
    """x as a finite float, or None."""
    if isinstance(x, bool) or x is None:
        return None
    try:
        v = float(x)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _fmt(x: Any, digits: int = 2, suffix: str = "") -> str:
    v = _num(x)
    if v is None:
        return "—"
    return f"{v:,.{digits}f}{suffix}"


def _fmt_bytes(n: Any) -> str:
    v = _num(n)
    if v is None:
        return "—"
    for unit, scale in (("GB", 1e9), ("MB", 1e6), ("kB", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:.{1 if v / scale >= 10 else 2}f} {unit}"
    return f"{int(v)} B"


def _shape(s: Any) -> str:
    return "×".join(str(d) for d in s) if isinstance(s, (list, tuple)) else str(s)


def _short(s: str, n: int = 44) -> str:
    return s if len(s) <= n else s[: n - 1] + "…"


def _ident(s: str) -> str:
    """A string usable in an HTML id (the escaped text stays readable elsewhere)."""
    return "".join(c if c.isalnum() or c in "-_" else "_" for c in s)


def _precision_color(p: str, extra: dict[str, str]) -> str:
    if p in _PRECISION_COLORS:
        return _PRECISION_COLORS[p]
    if p not in extra:
        extra[p] = _OTHER_COLORS[len(extra) % len(_OTHER_COLORS)]
    return extra[p]


class _Figures:
    """Emits plotly figures as <div> + <script>; plotly.js itself is inlined once in <head>."""

    def __init__(self) -> None:
        self.count = 0

    def html(self, fig, height: int, kind: str) -> str:
        import plotly.io as pio

        self.count += 1
        div = f"chart-{self.count}"
        fig.update_layout(height=height, autosize=True)
        # "<" as \u003c: valid JSON and JS, and no "</script>" can end the script early.
        spec = pio.to_json(fig, validate=False).replace("<", "\\u003c")
        config = json.dumps({"displaylogo": False, "responsive": True})
        return (f'<div id="{div}" class="qnnc-chart" data-chart="{_esc(kind)}" style="height:{height}px"></div>\n'
                f"<script>(function(){{var f={spec};"
                f'Plotly.newPlot("{div}",f.data,f.layout,{config});}})();</script>\n')


def _step_weight_bytes(manifest: dict) -> list[int]:
    """Bytes of the constants (weights, biases, requantization tables) each step reads."""
    values = manifest.get("values", [])
    out = []
    for s in manifest.get("steps", []):
        seen, total = set(), 0
        for a in s.get("args", []):
            v = a.get("value")
            if v in seen or not isinstance(v, int) or not 0 <= v < len(values):
                continue
            seen.add(v)
            if values[v].get("kind") == "const":
                total += int(values[v].get("bytes", 0))
        out.append(total)
    return out


def _weights_total(manifest: dict) -> Optional[int]:
    w = manifest.get("weights_bytes")
    if _num(w) is not None:
        return int(w)
    return sum(int(v.get("bytes", 0)) for v in manifest.get("values", []) if v.get("kind") == "const")


def _rows(mod: dict) -> list[dict]:
    """One dict a step: the manifest's step joined with its profile row (if it ran a kernel)."""
    manifest = mod["manifest"]
    prof = mod.get("profile") or {}
    by_step = {}
    for r in prof.get("rows", []) or []:
        if isinstance(r.get("step"), int):
            by_step[r["step"]] = r
    total = _num(prof.get("total_ms"))
    step_sum = sum(_num(r.get("ms")) or 0.0 for r in by_step.values())
    denom = total if total and total > 0 else step_sum
    wbytes = _step_weight_bytes(manifest)
    values = manifest.get("values", [])
    rows = []
    for i, s in enumerate(manifest.get("steps", [])):
        r = by_step.get(i, {})
        ms = _num(r.get("ms"))
        tuned = r.get("tuned", s.get("tuned"))
        knobs = (s.get("spec") or {}).get("knobs") or {}
        rows.append({
            "step": i, "name": str(s.get("name", "")), "op": str(s.get("op", "")),
            "kernel": str(r.get("kernel") or s.get("describe")
                          or ("view (no kernel)" if s.get("alias") else s.get("op", ""))),
            "fn": s.get("fn") if not s.get("alias") else None, "alias": bool(s.get("alias")),
            "precision": str(r["precision"]) if r.get("precision") else ("view" if s.get("alias") else ""),
            "weight_bytes": wbytes[i], "ms": ms,
            "pct_time": 100.0 * ms / denom if ms is not None and denom else None,
            "gops": _num(r.get("gops")), "macs": _num(r.get("macs")), "peak": r.get("peak"),
            "peak_pct": _num(r.get("peak_pct")), "profiled": bool(r),
            "tuned": "tuned" if tuned is True else "default",
            "knobs": " ".join(f"{k}={v}" for k, v in sorted(knobs.items())),
            "outputs": [str(values[w].get("name")) for w in s.get("writes", [])
                        if isinstance(w, int) and 0 <= w < len(values)],
        })
    return rows


def _module_precision(mod: dict) -> str:
    """The module's precision: graph.json's "precision" if it has one, else accuracy.json's, else
    the precision of the profile rows doing most MACs apart from fp32 (fp32 when there are none)."""
    m = mod["manifest"]
    for src in (m, mod.get("accuracy") or {}):
        if isinstance(src.get("precision"), str) and src["precision"]:
            return src["precision"]
    macs: Counter = Counter()
    for r in (mod.get("profile") or {}).get("rows", []) or []:
        p = r.get("precision")
        if p and p not in ("fp32", "f32"):
            macs[str(p)] += _num(r.get("macs")) or 0.0
    if macs:
        return macs.most_common(1)[0][0]
    if mod.get("profile"):
        return "fp32"
    ops = {s.get("op") for s in m.get("steps", [])}
    return "quantized" if any(str(o).endswith("_q") for o in ops) else "fp32"


def _accuracy_value(mod: dict) -> tuple[Optional[float], Optional[float]]:
    """(centered SQNR dB from accuracy.json, top-1 % from eval.json)."""
    acc = mod.get("accuracy") or {}
    sqnr = _num((acc.get("centered") or {}).get("sqnr_db"))
    ev = mod.get("eval") or {}
    top1 = _num(ev.get("top1"))
    if top1 is not None and top1 <= 1.0:
        top1 *= 100.0
    return sqnr, top1


def _pct(x: Any) -> str:
    """A fraction (0..1) or a percentage as '12.3%'."""
    v = _num(x)
    if v is None:
        return "—"
    return f"{100 * v if v <= 1.0 else v:.1f}%"


def _total_ms(mod: dict) -> Optional[float]:
    prof = mod.get("profile") or {}
    t = _num(prof.get("total_ms"))
    if t is None and prof.get("rows"):
        t = sum(_num(r.get("ms")) or 0.0 for r in prof["rows"])
    return t


# --------------------------------------------------------------------------------------------
# render

_CSS = """
:root { --fg:#1d2430; --muted:#5b6573; --line:#d9dee5; --bg2:#f5f7fa; --accent:#2f5f98; }
* { box-sizing: border-box; }
body { font-family: -apple-system, "Segoe UI", Roboto, "Helvetica Neue", Arial, sans-serif;
       color: var(--fg); margin: 0; line-height: 1.45; font-size: 14px; background: #fff; }
main { max-width: 1400px; margin: 0 auto; padding: 16px 28px 60px; }
h1 { font-size: 24px; margin: 8px 0 4px; }
h2 { font-size: 20px; margin: 36px 0 8px; padding-top: 12px; border-top: 2px solid var(--line); }
h3 { font-size: 16px; margin: 22px 0 6px; }
a { color: var(--accent); text-decoration: none; } a:hover { text-decoration: underline; }
.muted { color: var(--muted); }
.note { color: var(--muted); font-size: 13px; margin: 4px 0 10px; }
.warn { background: #fff4e5; border-left: 4px solid #f0a030; padding: 6px 10px; margin: 8px 0; }
nav { margin: 8px 0 4px; } nav a { margin-right: 14px; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 9px; text-align: left; vertical-align: top; }
th { background: var(--bg2); font-weight: 600; position: sticky; top: 0; }
td.n, th.n { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
tr.alias td { color: var(--muted); }
tr.base td { font-weight: 600; }
.kv { display: grid; grid-template-columns: max-content 1fr; gap: 2px 16px; margin: 6px 0 10px; }
.kv dt { color: var(--muted); } .kv dd { margin: 0; word-break: break-word; }
.chip { display: inline-block; padding: 0 7px; border-radius: 9px; color: #fff; font-size: 12px; }
.scroll { overflow-x: auto; }
.qnnc-chart { width: 100%; margin: 4px 0 14px; }
details { margin: 3px 0; }
details > summary { cursor: pointer; }
details.kernel { border: 1px solid var(--line); border-radius: 4px; padding: 4px 8px; }
details.kernel > summary code { font-weight: 600; }
details.code { margin-left: 12px; }
pre { background: var(--bg2); border: 1px solid var(--line); padding: 8px; overflow: auto;
      max-height: 640px; font-size: 12px; line-height: 1.35; margin: 4px 0 8px; }
code, pre { font-family: ui-monospace, "SFMono-Regular", Menlo, Consolas, "Liberation Mono", monospace; }
footer { margin-top: 40px; color: var(--muted); font-size: 12px; }
"""


def _kv(items: list[tuple[str, str]]) -> str:
    """A definition list; values are HTML already."""
    return '<dl class="kv">' + "".join(f"<dt>{_esc(k)}</dt><dd>{v}</dd>" for k, v in items) + "</dl>\n"


def _chip(text: str, color: str) -> str:
    return f'<span class="chip" style="background:{color}">{_esc(text)}</span>'


def _describe(mod: dict, rows: list[dict], precision: str) -> str:
    """One line saying what the module is."""
    m = mod["manifest"]
    ins = [m["values"][i] for i in m.get("inputs", []) if isinstance(i, int) and i < len(m.get("values", []))]
    mac_prec = Counter(r["precision"] for r in rows if r["profiled"] and (r["macs"] or 0) > 0 and r["precision"])
    kernels = len(distinct_kernels(m))
    parts = [f"{_esc(m.get('model', '?'))}", f"{_esc(precision)}"]
    if ins:
        parts.append("input " + ", ".join(_esc(_shape(v.get("shape"))) for v in ins))
    parts.append(f"{len(m.get('steps', []))} steps, {kernels} distinct kernels")
    if mac_prec:
        parts.append("layers with MACs: " + ", ".join(f"{n} {_esc(p)}" for p, n in mac_prec.most_common()))
    parts.append(f"weights {_fmt_bytes(_weights_total(m))}")
    parts.append(f"target {_esc(m.get('target', '?'))}")
    return " · ".join(parts)


def _comparison(group: list[tuple[int, dict]], figs: _Figures, anchors: list[str]) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    base_i = next((k for k, (_, m) in enumerate(group) if _module_precision(m) in ("fp32", "f32")), 0)
    base = group[base_i][1]
    base_ms = _total_ms(base)
    base_w = _weights_total(base["manifest"])
    data = []
    for k, (idx, m) in enumerate(group):
        ms = _total_ms(m)
        w = _weights_total(m["manifest"])
        sqnr, top1 = _accuracy_value(m)
        acc = m.get("accuracy") or {}
        data.append({
            "idx": idx, "label": m["label"], "precision": _module_precision(m), "ms": ms,
            "speedup": base_ms / ms if ms and base_ms else None, "w": w,
            "wratio": w / base_w if w and base_w else None, "sqnr": sqnr, "top1": top1,
            "cos": _num((acc.get("centered") or {}).get("cosine")),
            "agree": _num((acc.get("centered") or {}).get("top1")),
            "top5": _num((m.get("eval") or {}).get("top5")),
            "threads": (m.get("profile") or {}).get("threads"), "base": k == base_i,
        })
    head = ("<tr><th>module</th><th>precision</th><th class=n>latency (ms)</th><th class=n>speed-up</th>"
            "<th class=n>weights</th><th class=n>size vs base</th><th class=n>centered SQNR (dB)</th>"
            "<th class=n>centered cosine</th><th class=n>top-1 agreement</th><th class=n>top-1 (eval)</th>"
            "<th class=n>top-5 (eval)</th><th class=n>threads</th></tr>")
    body = []
    for d in data:
        body.append(
            f'<tr class="{"base" if d["base"] else ""}" data-module="{_esc(d["label"])}">'
            f'<td><a href="#{anchors[d["idx"]]}">{_esc(d["label"])}</a>{" (base)" if d["base"] else ""}</td>'
            f'<td>{_esc(d["precision"])}</td><td class=n>{_fmt(d["ms"], 3)}</td>'
            f'<td class=n>{_fmt(d["speedup"], 2, "×")}</td><td class=n>{_fmt_bytes(d["w"])}</td>'
            f'<td class=n>{_fmt(d["wratio"], 3, "×")}</td><td class=n>{_fmt(d["sqnr"], 2)}</td>'
            f'<td class=n>{_fmt(d["cos"], 5)}</td><td class=n>{_pct(d["agree"])}</td>'
            f'<td class=n>{_fmt(d["top1"], 1, "%")}</td><td class=n>{_pct(d["top5"])}</td>'
            f'<td class=n>{_esc(d["threads"] if d["threads"] is not None else "—")}</td></tr>')
    out = [f'<table class="comparison">{head}{"".join(body)}</table>\n']
    if len({d["threads"] for d in data}) > 1:
        out.append('<p class="warn">The modules were profiled with different thread counts.</p>')
    machines = {(g[1].get("profile") or {}).get("machine") for g in group} - {None}
    if len(machines) > 1:
        out.append('<p class="warn">The modules were profiled on different machines.</p>')

    panels = [("latency (ms)", "ms", 3), ("speed-up vs " + _short(base["label"], 20), "speedup", 2),
              ("weights (MB)", "w", 2)]
    if any(d["sqnr"] is not None for d in data):
        panels.append(("centered SQNR (dB)", "sqnr", 1))
    elif any(d["top1"] is not None for d in data):
        panels.append(("top-1 (%)", "top1", 1))
    fig = make_subplots(rows=1, cols=len(panels), subplot_titles=[_pesc(p[0]) for p in panels],
                        horizontal_spacing=0.07)
    labels = [_pesc(d["label"]) for d in data]
    short = [_pesc(_short(d["label"], 24)) for d in data]
    colors = [_MODULE_COLORS[d["idx"] % len(_MODULE_COLORS)] for d in data]
    for c, (title, key, digits) in enumerate(panels, 1):
        vals = [d[key] / 1e6 if key == "w" and d[key] is not None else d[key] for d in data]
        fig.add_trace(go.Bar(
            x=labels, y=vals, marker_color=colors, showlegend=False, name=_pesc(title),
            text=[_fmt(v, digits) if v is not None else "—" for v in vals], textposition="auto",
            hovertemplate="%{x}: %{y:.4g}<extra>" + _pesc(title) + "</extra>"), row=1, col=c)
    fig.update_xaxes(tickvals=labels, ticktext=short)
    fig.update_layout(template="plotly_white", margin=dict(l=40, r=20, t=40, b=40), bargap=0.3)
    out.append(figs.html(fig, 330, "comparison"))
    return "".join(out)


def _time_chart(mod: dict, rows: list[dict], figs: _Figures) -> str:
    import plotly.graph_objects as go
    from plotly.subplots import make_subplots

    ran = [r for r in rows if r["profiled"] and r["ms"] is not None]
    if not ran:
        return ""
    labels = [_pesc(f"{r['step']} {r['name']}") for r in ran]
    short = [_pesc(_short(f"{r['step']} {r['name']}")) for r in ran]
    fig = make_subplots(rows=1, cols=2, shared_yaxes=True, column_widths=[0.68, 0.32],
                        horizontal_spacing=0.025,
                        subplot_titles=("time per step (ms)", "% of the precision's peak"))
    extra: dict[str, str] = {}
    for p in dict.fromkeys(r["precision"] or "?" for r in ran):
        sel = [k for k, r in enumerate(ran) if (r["precision"] or "?") == p]
        color = _precision_color(p, extra)
        hover = []
        for k in sel:
            r = ran[k]
            hover.append("<br>".join([
                f"<b>{_pesc(r['name'])}</b>", _pesc(r["kernel"]), f"precision {_pesc(r['precision'] or '?')}",
                f"{_fmt(r['ms'], 3)} ms ({_fmt(r['pct_time'], 1)}% of the time)",
                f"{_fmt(r['gops'], 1)} GOP/s" + (f", {_fmt(r['peak_pct'], 1)}% of the {_pesc(r['peak'])} peak"
                                                  if r["peak_pct"] is not None else ", no peak for it"),
                f"weights {_fmt_bytes(r['weight_bytes'])}"]))
        fig.add_trace(go.Bar(
            y=[labels[k] for k in sel], x=[ran[k]["ms"] for k in sel], orientation="h",
            marker_color=color, name=_pesc(p), legendgroup=_pesc(p), hovertext=hover,
            hovertemplate="%{hovertext}<extra></extra>"), row=1, col=1)
        fig.add_trace(go.Bar(
            y=[labels[k] for k in sel], x=[ran[k]["peak_pct"] for k in sel], orientation="h",
            marker_color=color, name=_pesc(p), legendgroup=_pesc(p), showlegend=False, hovertext=hover,
            hovertemplate="%{x:.1f}% of peak<br>%{hovertext}<extra></extra>"), row=1, col=2)
    fig.update_yaxes(categoryorder="array", categoryarray=labels, autorange="reversed",
                     tickvals=labels, ticktext=short, automargin=True, tickfont=dict(size=11))
    top_pct = max([r["peak_pct"] for r in ran if r["peak_pct"] is not None] + [100.0])
    fig.update_xaxes(title_text="ms", rangemode="tozero", row=1, col=1)
    fig.update_xaxes(title_text="% of peak", range=[0, top_pct * 1.02], row=1, col=2)
    height, top, bottom = max(280, 120 + 19 * len(ran)), 72, 50
    fig.update_layout(template="plotly_white", barmode="overlay", bargap=0.25,
                      margin=dict(l=10, r=20, t=top, b=bottom),
                      # above the subplot titles: paper y is relative to the plot area's height
                      legend=dict(title_text="precision", orientation="h", x=0, xanchor="left",
                                  y=1 + 30 / (height - top - bottom), yanchor="bottom"))
    return figs.html(fig, height, "time")


def _sqnr_chart(mod: dict, rows: list[dict], figs: _Figures) -> str:
    import plotly.graph_objects as go

    layers = [l for l in (mod.get("accuracy") or {}).get("layers", []) or [] if isinstance(l, dict)]
    layers = [l for l in layers if _num(l.get("sqnr_db")) is not None]
    if not layers:
        return ""
    by_name: dict[str, dict] = {}
    for r in rows:
        for n in [r["name"]] + r["outputs"]:
            by_name.setdefault(n, r)
    names: list[str] = []
    hover: list[str] = []
    seen: Counter = Counter()
    for l in layers:
        n = str(l.get("name", ""))
        r = by_name.get(n)
        label = f"{r['step']} {r['name']}" if r else n  # named like the time chart's bars
        seen[label] += 1
        names.append(label if seen[label] == 1 else f"{label} ({seen[label]})")  # categories must be unique
        hover.append("<br>".join([f"<b>{_pesc(n)}</b>"] + ([f"step {r['step']} {_pesc(r['name'])}",
                                                           _pesc(r["kernel"])] if r else [])))
    labels = [_pesc(n) for n in names]
    short = [_pesc(_short(n)) for n in names]
    vals = [_num(l["sqnr_db"]) for l in layers]
    fig = go.Figure(go.Bar(
        y=labels, x=vals, orientation="h", marker=dict(color=vals, colorscale="RdYlGn", cmin=0, cmax=max(40.0, *vals),
                                                       colorbar=dict(title=dict(text="dB"), thickness=12)),
        text=[f"{v:.1f}" for v in vals], textposition="auto", hovertext=hover,
        hovertemplate="%{hovertext}<br>SQNR %{x:.2f} dB<extra></extra>"))
    fig.update_yaxes(categoryorder="array", categoryarray=labels, autorange="reversed",
                     tickvals=labels, ticktext=short, automargin=True, tickfont=dict(size=11))
    fig.update_xaxes(title_text="SQNR vs fp32 (dB)", rangemode="tozero")
    fig.update_layout(template="plotly_white", margin=dict(l=10, r=20, t=20, b=50))
    return figs.html(fig, max(240, 80 + 19 * len(layers)), "sqnr")


def _step_sqnr(mod: dict, rows: list[dict]) -> dict[int, float]:
    """accuracy.json's per-layer SQNR by step index: a layer is named after its step or after the
    value the step writes."""
    by_name: dict[str, int] = {}
    for r in rows:
        for n in [r["name"]] + r["outputs"]:
            by_name.setdefault(n, r["step"])
    out: dict[int, float] = {}
    for l in (mod.get("accuracy") or {}).get("layers", []) or []:
        v = _num(l.get("sqnr_db")) if isinstance(l, dict) else None
        if v is not None and str(l.get("name")) in by_name:
            out.setdefault(by_name[str(l.get("name"))], v)
    return out


def _layers_table(rows: list[dict], mid: str, has_code: bool, sqnr: dict[int, float]) -> str:
    head = ("<tr><th class=n>step</th><th>name</th><th>kernel</th><th>precision</th><th class=n>weights</th>"
            "<th class=n>ms</th><th class=n>% of time</th><th class=n>GOP/s</th><th class=n>% of peak</th>"
            + ("<th class=n>SQNR (dB)</th>" if sqnr else "") + "<th>tuned</th></tr>")
    body = []
    for r in rows:
        kernel = _esc(r["kernel"])
        if r["fn"] and has_code:
            kernel = f'<a href="#k-{mid}-{_ident(r["fn"])}" title="{_esc(r["fn"])}">{kernel}</a>'
        elif r["fn"]:
            kernel = f'<span title="{_esc(r["fn"])}">{kernel}</span>'
        peak = _fmt(r["peak_pct"], 1)
        if r["peak_pct"] is not None and r["peak"]:
            peak = f'<span title="of the {_esc(r["peak"])} peak">{peak}</span>'
        tuned = f'<span title="{_esc(r["knobs"])}">{_esc(r["tuned"])}</span>' if not r["alias"] else "—"
        s = sqnr.get(r["step"])
        body.append(
            f'<tr class="{"alias" if r["alias"] else ""}"><td class=n>{r["step"]}</td><td>{_esc(r["name"])}</td>'
            f'<td>{kernel}</td><td>{_esc(r["precision"] or "—")}</td>'
            f'<td class=n>{_fmt_bytes(r["weight_bytes"]) if r["weight_bytes"] else "—"}</td>'
            f'<td class=n>{_fmt(r["ms"], 3)}</td><td class=n>{_fmt(r["pct_time"], 1)}</td>'
            f'<td class=n>{_fmt(r["gops"], 1)}</td><td class=n>{peak}</td>'
            + (f'<td class=n>{_fmt(s, 1)}</td>' if sqnr else "") + f"<td>{tuned}</td></tr>")
    return f'<div class="scroll"><table class="layers">{head}{"".join(body)}</table></div>\n'


def _code_text(entry: dict, what: str) -> str:
    if what in entry:
        text = entry[what]
        cut = ""
        if len(text) > MAX_CODE_CHARS:
            cut = f"\n… cut: {len(text) - MAX_CODE_CHARS:,} more characters"
            text = text[:MAX_CODE_CHARS]
        return f"<pre>{_esc(text)}{_esc(cut)}</pre>"
    err = entry.get(what + "_error", "not gathered")
    return f'<p class="warn">{_esc(err)}</p>'


def _kernels(mod: dict, rows: list[dict], mid: str) -> str:
    kernels = distinct_kernels(mod["manifest"])
    if not kernels:
        return ""
    code = mod.get("code") or {}
    if not mod.get("code_gathered", bool(code)):
        return ('<p class="note">Kernel code not gathered (gathered with code=False / --no-code).</p>\n')
    out = []
    for fn, users in kernels:
        entry = code.get(fn, {})
        r0 = rows[users[0]]
        names = ", ".join(f"{u} {rows[u]['name']}" for u in users)
        lines = {w: entry[w].count("\n") + 1 for w in ("stmt", "asm") if w in entry}
        ms = sum(rows[u]["ms"] or 0.0 for u in users)
        n_stmt = f", {lines['stmt']:,} lines" if "stmt" in lines else ""
        n_asm = f" ({lines['asm']:,} lines)" if "asm" in lines else ""
        out.append(
            f'<details class="kernel" id="k-{mid}-{_ident(fn)}"><summary><code>{_esc(fn)}</code> — '
            f'{_esc(r0["kernel"])} <span class="muted">({_esc(r0["precision"] or "?")}; '
            f'{"step" if len(users) == 1 else "steps"} {_esc(names)}; {_fmt(ms, 3)} ms)</span></summary>\n'
            f'<details class="code"><summary>loop nest (Halide stmt{n_stmt})'
            f"</summary>{_code_text(entry, 'stmt')}</details>\n"
            f'<details class="code"><summary>assembly{n_asm}'
            f"</summary>{_code_text(entry, 'asm')}</details>\n</details>\n")
    return "".join(out)


def _peaks(prof: dict) -> str:
    peaks = prof.get("peaks") or {}
    items = []
    for k, p in peaks.items():
        if isinstance(p, dict) and _num(p.get("gops")) is not None:
            items.append(f"{_esc(k)}: {_fmt(p['gops'], 1)} {_esc(p.get('unit', 'GOP/s'))}"
                         + (f' <span class="muted">({_esc(p["what"])})</span>' if p.get("what") else ""))
    return "; ".join(items) if items else "—"


def _accuracy_table(mod: dict) -> str:
    acc = mod.get("accuracy")
    ev = mod.get("eval")
    out = []
    if acc:
        rows = []
        for kind in ("raw", "centered"):
            a = acc.get(kind) or {}
            rows.append(f"<tr><td>{kind}</td><td class=n>{_fmt(a.get('sqnr_db'), 2)}</td>"
                        f"<td class=n>{_fmt(a.get('cosine'), 5)}</td><td class=n>{_pct(a.get('top1'))}</td>"
                        f"<td class=n>{_pct(a.get('top5'))}</td></tr>")
        out.append(f'<p class="note">Logits vs the fp32 model on {_esc(acc.get("inputs", "?"))} inputs '
                   f'({_esc(acc.get("precision", ""))}); centered: each logit minus its mean over the inputs.</p>'
                   '<table class="accuracy"><tr><th>logits</th><th class=n>SQNR (dB)</th><th class=n>cosine</th>'
                   f'<th class=n>top-1 agreement</th><th class=n>top-5 agreement</th></tr>{"".join(rows)}</table>\n')
    if ev:
        out.append(f'<p>Evaluation: top-1 {_pct(ev.get("top1"))}, top-5 {_pct(ev.get("top5"))} '
                   f'on {_esc(ev.get("samples", "?"))} samples.</p>\n')
    return "".join(out)


def _module_section(i: int, mod: dict, anchor: str, figs: _Figures) -> str:
    m = mod["manifest"]
    prof = mod.get("profile") or {}
    rows = _rows(mod)
    precision = _module_precision(mod)
    mid = f"m{i}"
    total = _total_ms(mod)
    step_sum = sum(r["ms"] or 0.0 for r in rows)
    ins = [m["values"][v] for v in m.get("inputs", []) if isinstance(v, int) and v < len(m.get("values", []))]
    outs = [m["values"][v] for v in m.get("outputs", []) if isinstance(v, int) and v < len(m.get("values", []))]

    def io(vs: list[dict]) -> str:
        return ", ".join(f"{_esc(v.get('name'))}: {_esc(v.get('dtype'))}[{_esc(_shape(v.get('shape')))}]"
                         for v in vs) or "—"

    color = _MODULE_COLORS[i % len(_MODULE_COLORS)]
    out = [f'<section class="module" id="{anchor}"><h2>{_chip(mod["label"], color)} {_esc(m.get("model", "?"))} '
           f'· {_esc(precision)}</h2>\n']
    kv = [("directory", f"<code>{_esc(mod.get('dir', ''))}</code>"),
          ("what", _describe(mod, rows, precision)),
          ("inputs / outputs", f"{io(ins)} → {io(outs)}"),
          ("target", f"{_esc(m.get('target', '?'))} <span class=muted>({_esc(m.get('halide_target', ''))})</span>"),
          ("machine", _esc(prof.get("machine", "—"))),
          ("profile", (f"{_fmt(total, 3)} ms a call (median of {_esc(prof.get('repeat', '?'))} runs, "
                       f"{_esc(prof.get('threads', '?'))} threads); steps add up to {_fmt(step_sum, 3)} ms")
           if prof else f'<span class="warn">not profiled: {_esc(mod.get("profile_error") or "no profile")}</span>'),
          ("peaks", _peaks(prof)),
          ("weights", _fmt_bytes(_weights_total(m))),
          ("gathered", _esc(mod.get("gathered", "—")))]
    out.append(_kv(kv))
    if mod.get("accuracy") or mod.get("eval"):
        out.append("<h3>Accuracy</h3>\n" + _accuracy_table(mod))
    if prof:
        out.append("<h3>Time per layer</h3>\n<p class=note>Per-step medians; the right panel is each step's "
                   "GOP/s as a share of the measured peak of its precision (no bar: no peak for it).</p>\n")
        out.append(_time_chart(mod, rows, figs))
    chart = _sqnr_chart(mod, rows, figs)
    if chart:
        out.append("<h3>SQNR per layer</h3>\n<p class=note>Each layer's output vs the fp32 model's "
                   "(higher is better).</p>\n" + chart)
    sqnr = _step_sqnr(mod, rows)
    code = mod.get("code") or {}
    out.append("<h3>Layers</h3>\n" + _layers_table(rows, mid, bool(code), sqnr))
    out.append("<h3>Kernels</h3>\n<p class=note>One entry per distinct kernel (steps with the same shapes "
               "share one); loop nest as lowered by Halide, and its assembly.</p>\n" + _kernels(mod, rows, mid))
    out.append("</section>\n")
    return "".join(out)


def render(modules: list[dict], title: Optional[str] = None) -> str:
    """The HTML report of the gathered modules (gather()'s dicts), as one self-contained page."""
    try:
        import plotly
        import plotly.offline
    except ImportError as e:
        raise ImportError(f"qnnc.report needs plotly for its charts ({e}): pip install plotly") from e

    if not modules:
        raise ValueError("render: no modules")
    seen: Counter = Counter()
    unique = []
    for m in modules:  # two directories with one name (a/int8, b/int8) get distinct labels
        seen[m["label"]] += 1
        unique.append(dict(m, label=m["label"] if seen[m["label"]] == 1 else f"{m['label']} ({seen[m['label']]})"))
    modules = unique
    figs = _Figures()
    now = datetime.datetime.now().strftime("%Y-%m-%d %H:%M")
    models = list(dict.fromkeys(str(m["manifest"].get("model", "?")) for m in modules))
    title = title or f"qnnc report: {', '.join(models)}"
    anchors = [f"module-{i}-{_ident(m['label'])}" for i, m in enumerate(modules)]

    machines = list(dict.fromkeys(str((m.get("profile") or {}).get("machine")) for m in modules
                                  if (m.get("profile") or {}).get("machine")))
    threads = list(dict.fromkeys(str((m.get("profile") or {}).get("threads")) for m in modules
                                 if (m.get("profile") or {}).get("threads") is not None))
    targets = list(dict.fromkeys(str(m["manifest"].get("target", "?")) for m in modules))
    head = [("model", _esc(", ".join(models))), ("target", _esc(", ".join(targets))),
            ("machine", _esc("; ".join(machines)) or "—"), ("threads", _esc(", ".join(threads)) or "—"),
            ("date", _esc(now))]

    overview = ["<table class=modules><tr><th>module</th><th>what it is</th><th class=n>latency (ms)</th></tr>"]
    for i, m in enumerate(modules):
        rows = _rows(m)
        overview.append(f'<tr><td>{_chip(m["label"], _MODULE_COLORS[i % len(_MODULE_COLORS)])} '
                        f'<a href="#{anchors[i]}">details</a></td>'
                        f'<td>{_describe(m, rows, _module_precision(m))}</td>'
                        f'<td class=n>{_fmt(_total_ms(m), 3)}</td></tr>')
    overview.append("</table>\n")

    comparisons = []
    for model in models:
        group = [(i, m) for i, m in enumerate(modules) if str(m["manifest"].get("model", "?")) == model]
        if len(group) > 1:
            comparisons.append((f"<section class=\"comparison\" id=\"comparison-{_ident(model)}\">"
                                f"<h2>Comparison: {_esc(model)}</h2>\n"
                                "<p class=note>Latency: median end-to-end call; speed-up and size relative to the "
                                "base module (the fp32 one, else the first); accuracy from accuracy.json "
                                "(qnnc compile --report) and eval.json, — where absent.</p>\n")
                               + _comparison(group, figs, anchors) + "</section>\n")

    sections = [_module_section(i, m, anchors[i], figs) for i, m in enumerate(modules)]
    nav = " ".join(f'<a href="#{a}">{_esc(m["label"])}</a>' for a, m in zip(anchors, modules))
    return "".join([
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n",
        "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n",
        f"<meta name=\"generator\" content=\"qnnc.report schema {SCHEMA}, plotly {_esc(plotly.__version__)}\">\n",
        f"<title>{_esc(title)}</title>\n<style>{_CSS}</style>\n",
        "<script type=\"text/javascript\">", plotly.offline.get_plotlyjs(), "</script>\n",
        "</head>\n<body>\n<main>\n",
        f"<h1>{_esc(title)}</h1>\n", _kv(head), f"<nav>Modules: {nav}</nav>\n", "".join(overview),
        "".join(comparisons), "".join(sections),
        f"<footer>Generated by qnnc.report on {_esc(now)}; {figs.count} charts, plotly.js inlined.</footer>\n",
        "</main>\n</body>\n</html>\n",
    ])


# --------------------------------------------------------------------------------------------
# command line


def main(argv: Optional[list[str]] = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m qnnc.report",
        description="Writes a self-contained HTML report (per-layer time and % of peak, size, accuracy, "
                    "kernel code) of one or more compiled qnnc modules; several modules of one model "
                    "(fp32, int8, int4, ...) are compared side by side.")
    ap.add_argument("modules", nargs="+", metavar="MODULE", help="module directories (qnnc compile -o ...)")
    ap.add_argument("-o", "--output", default="report.html", help="HTML file to write (default: %(default)s)")
    ap.add_argument("--threads", type=int, default=0, help="threads for profiling (default: all cores)")
    ap.add_argument("--repeat", type=int, default=10, help="timed runs per profile (default: %(default)s)")
    ap.add_argument("--no-code", action="store_true", help="leave out the kernels' loop nests and assembly")
    ap.add_argument("--title", default=None, help="page title (default: 'qnnc report: MODEL')")
    args = ap.parse_args(argv)
    try:
        mods = [gather(d, profile_repeat=args.repeat, threads=args.threads, code=not args.no_code)
                for d in args.modules]
        page = render(mods, title=args.title)
        out = Path(args.output)
        if out.parent != Path(""):
            out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(page, encoding="utf-8")
    except (OSError, ValueError, ImportError) as e:
        print(f"report: error: {e}", file=sys.stderr)
        return 1
    size = out.stat().st_size
    print(f"report: wrote {out} ({size / 1e6:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
