"""The self-contained HTML report of `policyengine score --report DIR`: tables and matplotlib plots (PNG, embedded as
data: URIs), no external files or scripts. matplotlib is an optional extra: pip install 'policyengine[report]'."""

from __future__ import annotations

import base64
import html
import io
import math
from pathlib import Path
from typing import Any, Sequence

from .scoring import Metrics, ScoreReport
from .stats import Interval

CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2em auto;max-width:1200px;color:#222;
     padding:0 1em}
h1{font-size:1.5em} h2{font-size:1.2em;margin-top:2em;border-bottom:1px solid #ddd}
table{border-collapse:collapse;margin:.5em 0;font-size:.9em} th,td{border:1px solid #ddd;padding:.3em .6em;
     text-align:left;vertical-align:top} th{background:#f4f4f4} td.num{text-align:right;font-variant-numeric:tabular-nums}
.plots{display:flex;flex-wrap:wrap;gap:1em} figure{margin:0} figcaption{font-size:.8em;color:#555}
pre{white-space:pre-wrap;font-size:.8em;background:#fafafa;padding:.5em;margin:.3em 0}
.muted{color:#777} code{background:#f4f4f4;padding:0 .2em}
"""

# Marks every plot once the browser has decoded it, so a headless browser (and a reader) can tell that the report
# rendered: <body data-plots-rendered="N" data-plots-total="M">.
SCRIPT = """
(function(){
  var imgs=[].slice.call(document.querySelectorAll('img.plot')), done=0;
  document.body.setAttribute('data-plots-total', String(imgs.length));
  function mark(img){ if(img.naturalWidth>0 && !img.hasAttribute('data-rendered')){ img.setAttribute('data-rendered','yes');
    done++; document.body.setAttribute('data-plots-rendered', String(done)); } }
  document.body.setAttribute('data-plots-rendered','0');
  imgs.forEach(function(img){ if(img.complete){ mark(img); } else { img.addEventListener('load', function(){ mark(img); }); }
    if(img.decode){ img.decode().then(function(){ mark(img); }, function(){}); } });
})();
"""


def _png(fig: Any) -> str:
    import matplotlib.pyplot as plt

    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90, bbox_inches="tight")
    plt.close(fig)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def _img(b64: str, alt: str, caption: str) -> str:
    return (f'<figure><img class="plot" alt="{html.escape(alt)}" src="data:image/png;base64,{b64}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _pyplot() -> Any:
    try:
        import matplotlib
    except ImportError as e:
        raise RuntimeError("the HTML report needs matplotlib: pip install 'policyengine[report]'") from e
    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    return plt


def plot_rates(files: Sequence[Metrics]) -> str:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.5 + 0.45 * len(files)))
    names = [m.name for m in files]
    for offset, attr, color, label in ((-0.2, "frr", "#d62728", "false refusals"), (0.2, "catch", "#2ca02c", "catch")):
        vals, lo, hi, ys = [], [], [], []
        for i, m in enumerate(files):
            iv: Interval = getattr(m, attr)
            if iv.rate is None:
                continue
            assert iv.low is not None and iv.high is not None
            ys.append(i + offset)
            vals.append(100 * iv.rate)
            lo.append(100 * (iv.rate - iv.low))
            hi.append(100 * (iv.high - iv.rate))
        ax.barh(ys, vals, height=0.38, color=color, label=label, xerr=[lo, hi], capsize=3)
    ax.set_yticks(range(len(names)), [Path(n).name for n in names])
    ax.invert_yaxis()
    ax.set_xlim(0, 100)
    ax.set_xlabel("% of rows (95% Wilson interval)")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def plot_rules(report: ScoreReport) -> str | None:
    rules = [r for r in report.rules if r.false_refusals or r.catches]
    if not rules:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 0.6 + 0.32 * len(rules)))
    ys = range(len(rules))
    ax.barh([y - 0.2 for y in ys], [r.false_refusals for r in rules], height=0.38, color="#d62728",
            label="false refusals (safe rows blocked)")
    ax.barh([y + 0.2 for y in ys], [r.catches for r in rules], height=0.38, color="#2ca02c",
            label="catches (unsafe rows blocked)")
    ax.set_yticks(list(ys), [r.rule for r in rules], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel("rows decided by the rule")
    ax.legend(loc="lower right", fontsize=8)
    return _png(fig)


def plot_concept(report: ScoreReport, concept: str) -> str | None:
    safe = [r.scores[concept].score for r in report.results if concept in r.scores and not r.row.unsafe
            and math.isfinite(r.scores[concept].score)]
    unsafe = [r.scores[concept].score for r in report.results if concept in r.scores and r.row.unsafe
              and math.isfinite(r.scores[concept].score)]
    if not safe and not unsafe:
        return None
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(4.6, 2.4))
    bins = [i / 50 for i in range(-10, 51)]
    if safe:
        ax.hist(safe, bins=bins, alpha=0.55, color="#1f77b4", label=f"safe ({len(safe)})")
    if unsafe:
        ax.hist(unsafe, bins=bins, alpha=0.55, color="#ff7f0e", label=f"unsafe ({len(unsafe)})")
    t = report.thresholds.get(concept)
    if t is not None:
        ax.axvline(t, color="black", linestyle="--", linewidth=1.2, label=f"threshold {t:g}")
    ax.set_xlim(-0.1, 1.0)
    ax.set_title(concept, fontsize=9)
    ax.set_xlabel("best similarity to an example", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.legend(fontsize=7)
    return _png(fig)


def _num(x: Any) -> str:
    return f'<td class="num">{html.escape(str(x))}</td>'


def _table(head: Sequence[str], rows: Sequence[Sequence[str]], cls: str) -> str:
    th = "".join(f"<th>{html.escape(h)}</th>" for h in head)
    body = "".join("<tr>" + "".join(r) + "</tr>" for r in rows)
    return f'<table class="{cls}"><thead><tr>{th}</tr></thead><tbody>{body}</tbody></table>'


def render_html(report: ScoreReport, gates: Sequence[dict] = ()) -> str:
    e = html.escape
    files = [*report.files, report.overall] if len(report.files) > 1 else list(report.files)
    parts = [f"<!doctype html><html lang=en><head><meta charset=utf-8><title>policyengine score: "
             f"{e(report.policy)}</title><style>{CSS}</style></head><body>",
             f"<h1>policyengine score: <code>{e(report.policy)}</code></h1>",
             f'<p class="muted">policy digest {e(report.digest)}; model {e(report.model or "(no concepts)")}; '
             f"{report.overall.rows} rows. Blocked = action <code>block</code>; redact and flag are counted apart. "
             "Intervals: 95% Wilson (F1: percentile bootstrap).</p>",
             "<h2>Summary</h2>",
             _table(["file", "rows", "false refusals (safe blocked)", "catch (unsafe blocked)", "precision", "F1",
                     "redacted safe/unsafe", "flagged safe/unsafe"],
                    [[f"<td>{e(m.name)}</td>", _num(m.rows), _num(m.frr.pct()), _num(m.catch.pct()),
                      _num(m.precision.pct()), _num(m.f1.pct()),
                      _num(f"{m.redacted['safe']}/{m.redacted['unsafe']}"),
                      _num(f"{m.flagged['safe']}/{m.flagged['unsafe']}")] for m in files], "summary")]
    for g in gates:
        parts.append(f"<p>gate <code>{e(g['gate'])} {g['limit']:.4g}</code>: "
                     f"<b>{'ok' if g['ok'] else 'MISSED'}</b> ({e(g['detail'])})</p>")
    parts += ['<div class="plots">', _img(plot_rates(files), "false-refusal and catch rates per file",
                                          "False-refusal and catch rate per file, with 95% intervals"), "</div>"]
    parts.append("<h2>Per rule</h2>")
    rules_png = plot_rules(report)
    if rules_png:
        parts.append('<div class="plots">' + _img(rules_png, "false refusals and catches per rule",
                                                  "Rows each rule decided") + "</div>")
    parts.append(_table(["rule", "false refusals", "catches", "also fired (safe/unsafe)", "redacted (safe/unsafe)",
                         "flagged (safe/unsafe)", "source"],
                        [[f"<td>{e(r.rule)}</td>", _num(r.false_refusals), _num(r.catches),
                          _num(f"{r.also_fired_safe}/{r.also_fired_unsafe}"),
                          _num(f"{r.redacted['safe']}/{r.redacted['unsafe']}"),
                          _num(f"{r.flagged['safe']}/{r.flagged['unsafe']}"), f"<td>{e(r.source)}</td>"]
                         for r in report.rules], "rules"))
    concept_imgs = []
    for concept in report.thresholds:
        png = plot_concept(report, concept)
        if png:
            concept_imgs.append(_img(png, f"score distribution of concept {concept}",
                                     f"{concept}: safe vs unsafe rows, threshold dashed"))
    if concept_imgs:
        parts += ["<h2>Concept scores</h2>",
                  '<p class="muted">Each row\'s best similarity to the concept\'s examples. A row fires only at or '
                  "above the threshold and when that chunk is closer to an example than to every counter-example.</p>",
                  '<div class="plots">', *concept_imgs, "</div>"]
    if report.categories:
        parts += ["<h2>Per category</h2>",
                  _table(["category", "false refusals", "catch"],
                         [[f"<td>{e(c.category)}</td>", _num(c.frr.pct()), _num(c.catch.pct())]
                          for c in report.categories], "categories")]
    frs = report.false_refusals
    parts.append(f"<h2>False refusals ({len(frs)})</h2>")
    parts.append(_errors_table(frs))
    misses = report.misses
    parts.append(f"<h2>Misses: unsafe rows not blocked ({len(misses)})</h2>")
    parts.append(_errors_table(misses))
    if report.near_copies:
        parts += [f"<h2>Near-copies of policy strings ({len(report.near_copies)})</h2>",
                  f'<p class="muted">Rows at similarity &ge; {report.near_copy:g} to an example or counter-example of '
                  "the policy: the figures on them show what the policy was written from, not how it "
                  "generalises.</p>",
                  _table(["id", "row", "label", "similarity", "concept", "text"],
                         [[f"<td>{e(c.result.row.id)}</td>",
                           f"<td>{e(Path(c.result.row.file).name)}:{c.result.row.line}</td>",
                           f"<td>{e(c.result.row.label)}</td>", _num(f"{c.similarity:.3f}"),
                           f"<td>{e(c.concept)} ({e(c.kind)})</td>", f"<td>{e(c.result.row.text[:500])}</td>"]
                          for c in report.near_copies[:200]], "near-copies")]
    parts.append(f"<script>{SCRIPT}</script></body></html>")
    return "\n".join(parts)


def _errors_table(results: Sequence[Any], limit: int = 200) -> str:
    e = html.escape
    rows = []
    for r in results[:limit]:
        rows.append([f"<td>{e(r.row.id)}</td>", f"<td>{e(Path(r.row.file).name)}:{r.row.line}</td>",
                     f"<td>{e(r.row.category or '')}</td>", f"<td>{e(r.action)}</td>",
                     f"<td>{e(r.decision.rule or '')}</td>",
                     f"<td>{e(r.row.text[:500])}<details><summary>explanation</summary>"
                     f"<pre>{e(r.decision.explain())}</pre></details></td>"])
    more = f'<p class="muted">... and {len(results) - limit} more</p>' if len(results) > limit else ""
    return _table(["id", "row", "category", "action", "rule", "text and explanation"], rows, "errors") + more


def write_report(report: ScoreReport, out_dir: str | Path, gates: Sequence[dict] = ()) -> Path:
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    path = out / "index.html"
    path.write_text(render_html(report, gates), encoding="utf-8")
    return path
