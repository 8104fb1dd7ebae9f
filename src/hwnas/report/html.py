"""The self-contained HTML search report.

One file, viewable offline: plotly.js is inlined from the installed plotly package, the data
travels as one JSON blob, and a little inline JavaScript draws the plots, sorts and filters the
tables and lazily draws a trial's learning curve when its details are opened (so a report of
thousands of trials holds two plotly charts up front, not thousands).
"""

from __future__ import annotations

import contextlib
import json
import math
import time
from collections import Counter
from collections.abc import Sequence
from html import escape
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hwnas.experiment.study import Study

from hwnas.core.constraints import Constraint
from hwnas.report.plots import (
    STATUS_COLORS,
    STATUS_ORDER,
    Trial,
    clean,
    curve_data,
    expected_vs_measured_figure,
    fmt_arch,
    fmt_bytes,
    fmt_latency,
    fmt_metric,
    fmt_pct,
    fmt_seconds,
    fmt_si,
    fmt_test,
    latency_keys,
    metric,
    num,
    pareto_figure,
    progress_figure,
    score_key,
    spos_figure,
    tested_accuracy,
    theta_figure,
)

__all__ = ["GENERATOR", "is_report", "render_report", "write_report"]

#: the head's generator tag: `hwnas report --output` replaces a file only if it carries it
GENERATOR = "hwnas report"


def is_report(path: Path) -> bool:
    """Whether ``path`` is a report this module wrote (its head names the generator)."""
    try:
        with path.open("rb") as f:
            head = f.read(1024)
    except OSError:
        return False
    return f'<meta name="generator" content="{GENERATOR}">'.encode() in head


def write_report(
    path: Path,
    trials: list[dict],
    pareto_ids: list[int],
    objectives: list[tuple[str, str]],
    *,
    title: str = "hwnas search",
    config: dict | None = None,
    summary: dict | None = None,
    oneshot: dict | None = None,
) -> Path:
    """Write the report to ``path`` (parents created) and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = render_report(
        trials,
        pareto_ids,
        objectives,
        title=title,
        config=config,
        summary=summary,
        oneshot=oneshot,
    )
    path.write_text(doc, encoding="utf-8")
    return path


def render_report(
    trials: Sequence[Trial],
    pareto_ids: Sequence[int],
    objectives: Sequence[tuple[str, str]],
    *,
    title: str = "hwnas search",
    config: dict | None = None,
    summary: dict | None = None,
    oneshot: dict | None = None,
) -> str:
    """The report as one HTML string (``oneshot``: a one-shot strategy's theta history, the
    study's meta key ``oneshot``, adds its section)."""
    trials = sorted(trials, key=_id)
    objectives = [(str(k), str(s)) for k, s in objectives]
    front_ids = {i for i in pareto_ids if isinstance(i, int)}
    front = [t for t in trials if t.get("id") in front_ids and t.get("status") == "complete"]
    asked = _asked(objectives, config)
    hover: dict[str, str] = {}
    data = {
        "pareto": _share_hover(pareto_figure(trials, front_ids, objectives), hover),
        "progress": _share_hover(progress_figure(trials, objectives), hover),
        "curves": {str(t.get("id")): c for t in trials if (c := curve_data(t)) is not None},
        "hover": hover,
    }
    oneshot_section = ""
    if oneshot and oneshot.get("evaluations") is not None:  # spos: a search on the supernet
        data["spos"] = clean(spos_figure(oneshot, trials))
        oneshot_section = _section(
            "One-shot search",
            '<p class="note">Every arch the search scored with the supernet\'s weights (after '
            "BatchNorm recalibration) at its cost, the derived ones marked, and the derived "
            "nets' accuracy once trained stand-alone: the gap is the supernet's error.</p>"
            '<div id="spos-plot" class="plot"></div>',
            "oneshot",
        )
    elif oneshot:
        data["theta"] = clean(theta_figure(oneshot))
        data["oneshot_cost"] = _share_hover(expected_vs_measured_figure(oneshot, trials), hover)
        oneshot_section = _section(
            "One-shot search",
            '<p class="note">How the architecture weights evolved: per setting (dropdown), '
            "each position's probability of every op at the end of each search epoch. Below, "
            "each derived net's cost as the per-choice table predicted it against the cost "
            "measured on the target.</p>"
            '<div id="theta-plot" class="plot"></div>'
            '<div id="oneshot-cost-plot" class="plot"></div>',
            "oneshot",
        )
    body = "\n".join(
        [
            _header(
                title,
                trials,
                front,
                objectives,
                summary or {},
                bool(config),
                [str(c) for c in (config or {}).get("constraints") or []],
            ),
            _section(
                "Pareto front",
                '<p class="note">Each point is a complete trial; the highlighted ones are the '
                "search's Pareto set. Switch the cost axis with the dropdown; the dotted step line "
                "is the accuracy front against the selected cost. Pruned trials sit on the bottom "
                "edge at their measured cost. Click a point to open its details.</p>"
                '<div id="pareto-plot" class="plot"></div>' + _pareto_table(front, asked),
                "pareto",
            ),
            _section(
                "Search progress",
                '<div id="progress-plot" class="plot"></div>',
                "progress",
            ),
            oneshot_section,
            _section("All trials", _trials_table(trials, front_ids, asked), "trials"),
            _section("Trial details", _details(trials, front_ids), "details"),
            _config(config),
        ]
    )
    return (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f'<meta name="generator" content="{GENERATOR}">\n'
        f"<title>{escape(title)}</title>\n<style>{_CSS}</style>\n"
        f"<script>{_plotly_js()}</script>\n</head>\n<body>\n<main>\n{body}\n</main>\n"
        f'<script id="hwnas-data" type="application/json">{_script_json(data)}</script>\n'
        f"<script>{_JS}</script>\n</body>\n</html>\n"
    )


# ------------------------------------------------------------------------------ helpers
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs  # lazy: only needed when writing

    return get_plotlyjs().replace("</script", "<\\/script")


def _share_hover(fig: dict[str, Any], hover: dict[str, str]) -> dict[str, Any]:
    """Move per-point hover texts into ``hover`` (keyed by trial id) so each is stored once;
    the page's script puts them back from ``customdata`` before plotting."""
    for trace in fig.get("data", []):
        ids, texts = trace.get("customdata"), trace.get("text")
        if isinstance(ids, list) and isinstance(texts, list) and len(ids) == len(texts):
            hover.update((str(i), str(x)) for i, x in zip(ids, texts, strict=True))
            del trace["text"]
            trace["hovertext_from_ids"] = True
    return _round_floats(fig)


def _round_floats(obj: Any, digits: int = 6) -> Any:
    """Floats rounded to ``digits`` significant digits (plot coordinates need no more)."""
    if isinstance(obj, float):
        return float(f"{obj:.{digits}g}") if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _round_floats(v, digits) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_round_floats(v, digits) for v in obj]
    return obj


def _script_json(obj: Any) -> str:
    """JSON that is safe inside a ``<script>`` element (no ``<``, ``>``, ``&``; no NaN)."""
    text = json.dumps(clean(obj), allow_nan=False, separators=(",", ":"), ensure_ascii=False)
    return text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


def _section(heading: str, inner: str, anchor: str) -> str:
    return f'<section id="{anchor}"><h2>{escape(heading)}</h2>{inner}</section>'


def _id(t: Trial) -> int:
    tid = t.get("id")
    return tid if isinstance(tid, int) else -1


def _tid(t: Trial) -> str:
    return escape(str(t.get("id")))


def _link(tid: Any) -> str:
    if tid is None:
        return "–"
    s = escape(str(tid))
    return f'<a href="#trial-{s}">#{s}</a>'


def _badge(status: Any) -> str:
    s = str(status)
    color = STATUS_COLORS.get(s, "#555555")
    return f'<span class="badge" style="background:{color}">{escape(s)}</span>'


def _td(text: str, sort: float | str | None = None, cls: str = "") -> str:
    attr = "" if sort is None else f' data-v="{escape(str(sort))}"'
    klass = f' class="{cls}"' if cls else ""
    return f"<td{attr}{klass}>{text}</td>"


def _utc(ts: Any) -> str:
    f = num(ts)
    return "–" if f is None else time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(f))


# ------------------------------------------------------------------------------- header
def _header(
    title: str,
    trials: Sequence[Trial],
    front: Sequence[Trial],
    objectives: Sequence[tuple[str, str]],
    summary: dict,
    has_config: bool,
    constraints: Sequence[str] = (),
) -> str:
    counts = Counter(str(t.get("status")) for t in trials)
    statuses = [s for s in STATUS_ORDER if counts[s]] + sorted(set(counts) - set(STATUS_ORDER))
    ykey = score_key(objectives)
    done = [t for t in trials if t.get("status") == "complete" and metric(t, ykey) is not None]
    best = max(done, key=lambda t: metric(t, ykey) or 0.0, default=None)

    finals = sum(t.get("stage") == "final" for t in trials)
    cards: list[tuple[str, str]] = [
        (
            "trials",
            f"<b>{len(trials)}</b><small>"
            + (f"{finals} of them final training{'s' * (finals > 1)} · " if finals else "")
            + " · ".join(
                f'<span style="color:{STATUS_COLORS.get(s, "#555")}">{counts[s]} {escape(s)}</span>'
                for s in statuses
            )
            + "</small>",
        ),
        (
            f"best {ykey}",
            "<b>–</b>"
            if best is None
            else f"<b>{escape(fmt_metric(ykey, metric(best, ykey)))}</b>"
            f"<small>{_link(best.get('id'))} · {escape(fmt_latency(best))}</small>",
        ),
        ("Pareto set", f"<b>{len(front)}</b><small>non-dominated trials</small>"),
    ]
    known = {
        "hypervolume": lambda v: f"{v:.4g}" if num(v) is not None else str(v),
        "elapsed_s": lambda v: fmt_seconds(num(v)),
        "references": lambda v: "; ".join(
            (
                f"#{r['reference']} dominated by " + ", ".join(f"#{i}" for i in r["dominated_by"])
                if r["dominated_by"]
                else f"#{r['reference']} not dominated"
            )
            + (f" ({', '.join(r['side_by_side'])} side by side)" if r.get("side_by_side") else "")
            for r in v
        ),
    }
    labels = {
        "elapsed_s": "time in trials",  # the spans trials ran: the strategy's own time apart
        "hypervolume": "hypervolume",
        "references": "reference nets after final training",
    }
    for key, value in summary.items():
        if value is None:
            continue
        if isinstance(value, dict):
            text = ", ".join(f"{k}={_plain(v)}" for k, v in value.items())
        else:
            text = known.get(key, _plain)(value)
        cards.append((labels.get(key, str(key).replace("_", " ")), f"<b>{escape(text)}</b>"))
    arrows = " · ".join(f"{escape(k)} {'↑' if s == 'max' else '↓'}" for k, s in objectives)
    card_html = "".join(
        f'<div class="card"><span>{escape(label)}</span>{value}</div>' for label, value in cards
    )
    return (
        f"<header><h1>{escape(title)}</h1>"
        f'<p class="sub">objectives: {arrows or "–"}'
        + (f" · constraints: {escape(', '.join(constraints))}" if constraints else "")
        + " · generated "
        f"{escape(time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime()))}</p>"
        f'<div class="cards">{card_html}</div>'
        '<nav><a href="#pareto">Pareto front</a><a href="#progress">Progress</a>'
        '<a href="#trials">All trials</a><a href="#details">Trial details</a>'
        + ('<a href="#config">Config</a>' if has_config else "")
        + "</nav></header>"
    )


def _plain(v: Any) -> str:
    f = num(v)
    if f is not None and not isinstance(v, int):
        return f"{f:.4g}"
    return str(v)


# ------------------------------------------------------------------------------- tables
#: metrics the tables show in columns of their own, whatever the search asked for
_SHOWN = {"accuracy", "macs", "params", "peak_memory_bytes", "model_bytes", "model_bytes_int8"}


def _asked(objectives: Sequence[tuple[str, str]], config: dict | None) -> list[str]:
    """Objectives and constrained metrics the fixed columns leave out (a device's SRAM and
    flash, energy, a proxy score): a search judged by them shows them, as `show` does."""
    bounds = []
    for c in (config or {}).get("constraints", []):
        with contextlib.suppress(ValueError):  # a config the report only shows
            bounds.append(Constraint.parse(str(c)).metric)
    named = [m for m, _ in objectives] + bounds
    return [m for m in dict.fromkeys(named) if m not in _SHOWN and not m.startswith("latency_ms")]


def _asked_heads(keys: Sequence[str]) -> list[tuple[str, str]]:
    return [(k.replace("_", " "), "num") for k in keys]


def _asked_cells(trial: Trial, keys: Sequence[str]) -> list[str]:
    return [_td(escape(fmt_metric(k, metric(trial, k))), metric(trial, k), "n") for k in keys]


def _pareto_table(front: Sequence[Trial], asked: Sequence[str] = ()) -> str:
    if not front:
        return '<p class="empty">No Pareto set yet.</p>'
    rows = sorted(front, key=lambda t: (metric(t, "latency_ms") or math.inf, _id(t)))
    lats = latency_keys(rows)
    has_test = any(tested_accuracy(t) is not None for t in rows)
    head = [
        ("id", "num"),
        ("accuracy", "num"),
        *([("test acc.", "num")] if has_test else []),
        *_latency_heads(lats),
        ("MACs", "num"),
        ("params", "num"),
        ("peak memory", "num"),
        ("model size fp32 / int8", "num"),
        *_asked_heads(asked),
        ("architecture", "str"),
    ]
    body = []
    for t in rows:
        acc = metric(t, "accuracy")
        macs, params = metric(t, "macs"), metric(t, "params")
        mem, size, size8 = (
            metric(t, "peak_memory_bytes"),
            metric(t, "model_bytes"),
            metric(t, "model_bytes_int8"),
        )
        cells = [
            _td(_link(t.get("id")), t.get("id")),
            _td(fmt_pct(acc), acc, "n"),
            *([_td(escape(fmt_test(t)), tested_accuracy(t), "n")] if has_test else []),
            *_latency_cells(t, lats),
            _td(fmt_si(macs), macs, "n"),
            _td(fmt_si(params), params, "n"),
            _td(fmt_bytes(mem), mem, "n"),
            _td(f"{fmt_bytes(size)} / {fmt_bytes(size8)}", size, "n"),
            *_asked_cells(t, asked),
            _td(escape(fmt_arch(t)), cls="desc"),
        ]
        body.append("<tr>" + "".join(cells) + "</tr>")
    return _table("pareto-table", head, body)


def _latency_heads(keys: Sequence[str]) -> list[tuple[str, str]]:
    return [
        ("latency " + k[len("latency_ms") :] if k != "latency_ms" else "latency", "num")
        for k in keys
    ]


def _latency_cells(trial: Trial, keys: Sequence[str]) -> list[str]:
    return [_td(escape(fmt_latency(trial, k)), metric(trial, k), "n") for k in keys]


def _table(table_id: str, head: Sequence[tuple[str, str]], rows: Sequence[str]) -> str:
    ths = "".join(
        f'<th data-type="{kind}" title="click to sort">{escape(name)}</th>' for name, kind in head
    )
    return (
        f'<div class="tablewrap"><table id="{table_id}" class="sortable">'
        f"<thead><tr>{ths}</tr></thead><tbody>{''.join(rows)}</tbody></table></div>"
    )


def _trials_table(trials: Sequence[Trial], front_ids: set[int], asked: Sequence[str] = ()) -> str:
    if not trials:
        return '<p class="empty">No trials.</p>'
    lats = latency_keys(trials)
    has_test = any(tested_accuracy(t) is not None for t in trials)
    head = [
        ("id", "num"),
        ("status", "str"),
        ("parent", "num"),
        ("accuracy", "num"),
        *([("test acc.", "num")] if has_test else []),
        *_latency_heads(lats),
        ("MACs", "num"),
        ("params", "num"),
        *_asked_heads(asked),
        ("train time", "num"),
        ("error / constraint", "str"),
        ("architecture", "str"),
    ]
    rows = []
    for t in trials:
        acc = metric(t, "accuracy")
        macs, params, secs = metric(t, "macs"), metric(t, "params"), metric(t, "train_seconds")
        parent = t.get("parent_id")
        star = ' <span class="star" title="Pareto set">★</span>' if t.get("id") in front_ids else ""
        cells = [
            _td(_link(t.get("id")) + star, t.get("id")),
            _td(_badge(t.get("status")), str(t.get("status"))),
            _td(
                # a final training retrains its parent: no child of a mutation
                ("retrains " if t.get("stage") == "final" else "") + _link(parent)
                if parent is not None
                else "–",
                parent,
            ),
            _td(fmt_pct(acc), acc, "n"),
            *([_td(escape(fmt_test(t)), tested_accuracy(t), "n")] if has_test else []),
            *_latency_cells(t, lats),
            _td(fmt_si(macs), macs, "n"),
            _td(fmt_si(params), params, "n"),
            *_asked_cells(t, asked),
            _td(fmt_seconds(secs), secs, "n"),
            _td(escape(str(t.get("error") or "")), cls="err"),
            _td(escape(fmt_arch(t)), cls="desc"),
        ]
        rows.append(f'<tr data-id="{_tid(t)}">' + "".join(cells) + "</tr>")
    return (
        '<div class="tools"><input id="trial-filter" type="search" '
        'placeholder="filter rows (status, error, architecture…)" aria-label="filter trials">'
        f'<span id="trial-count">{len(trials)} trials</span></div>'
        + _table("trials-table", head, rows)
    )


def _details(trials: Sequence[Trial], front_ids: set[int]) -> str:
    if not trials:
        return '<p class="empty">No trials.</p>'
    out = []
    for t in trials:
        tid = _tid(t)
        metrics = t.get("metrics") if isinstance(t.get("metrics"), dict) else {}
        mrows = "".join(
            f"<tr><th>{escape(str(k))}</th><td>{escape(fmt_metric(str(k), v))}</td></tr>"
            for k, v in (metrics or {}).items()
        )
        start, end = num(t.get("started_at")), num(t.get("finished_at"))
        facts = [
            ("status", _badge(t.get("status"))),
            ("parent", _link(t.get("parent_id"))),
            ("seed", escape(str(t.get("seed", "–")))),
            ("started", _utc(start)),
            ("finished", _utc(end)),
            ("wall time", fmt_seconds(end - start) if start is not None and end else "–"),
        ]
        if t.get("error"):
            facts.append(("error", f'<span class="err">{escape(str(t["error"]))}</span>'))
        frows = "".join(f"<tr><th>{k}</th><td>{v}</td></tr>" for k, v in facts)
        arch = json.dumps(clean(t.get("arch")), indent=2, sort_keys=True, ensure_ascii=False)
        acc = metric(t, "accuracy")
        star = ' <span class="star">★</span>' if t.get("id") in front_ids else ""
        lat = escape(fmt_latency(t)) if metric(t, "latency_ms") is not None else ""
        out.append(
            f'<details class="trial" id="trial-{tid}" data-id="{tid}">'
            f'<summary><span class="sid"><b>#{tid}</b>{star}</span>'
            f'<span class="sst">{_badge(t.get("status"))}</span>'
            f'<span class="n">{fmt_pct(acc) if acc is not None else ""}</span>'
            f'<span class="n lat">{lat}</span>'
            f'<span class="desc">{escape(fmt_arch(t))}</span></summary>'
            f'<div class="dgrid"><div><table class="kv">{frows}</table>'
            f'<table class="kv">{mrows or "<tr><td>no metrics</td></tr>"}</table></div>'
            '<div><div class="curve"></div><div class="label">architecture</div>'
            f"<pre>{escape(arch)}</pre></div></div></details>"
        )
    return "".join(out)


def _config(config: dict | None) -> str:
    if not config:
        return ""
    try:
        import yaml

        text = yaml.safe_dump(clean(config), sort_keys=False, allow_unicode=True, width=100)
    except Exception:  # pragma: no cover - yaml is a dependency; JSON is the fallback
        text = json.dumps(clean(config), indent=2)
    return (
        '<section id="config"><details><summary><h2>Configuration</h2></summary>'
        f"<pre>{escape(text)}</pre></details></section>"
    )


# ---------------------------------------------------------------------------- templates
_CSS = """
*{box-sizing:border-box}
body{margin:0;background:#f4f6f9;color:#26303b;
 font:14px/1.45 system-ui,-apple-system,'Segoe UI',Roboto,Helvetica,Arial,sans-serif}
main{max-width:1280px;margin:0 auto;padding:20px 24px 60px}
h1{font-size:24px;margin:0 0 2px}
h2{font-size:18px;margin:0 0 10px;display:inline-block}
a{color:#2f64a8;text-decoration:none}a:hover{text-decoration:underline}
header .sub{color:#6b7785;margin:0 0 14px}
nav{margin-top:14px;display:flex;gap:18px;font-size:13px}
.cards{display:flex;flex-wrap:wrap;gap:12px}
.card{background:#fff;border:1px solid #e1e6ec;border-radius:8px;padding:10px 14px;flex:0 1 auto;min-width:130px}
.card>span{display:block;color:#6b7785;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.card b{display:block;font-size:19px;white-space:nowrap;font-weight:600;margin-top:2px}
.card small{display:block;color:#56616d;font-size:12px;white-space:nowrap}
section{background:#fff;border:1px solid #e1e6ec;border-radius:8px;padding:16px 18px;margin-top:18px}
.note{color:#56616d;font-size:13px;margin:0 0 8px}
.empty{color:#6b7785;font-style:italic}
.plot{width:100%;min-height:300px}
.tablewrap{max-height:560px;overflow:auto;border:1px solid #e8ecf1;border-radius:6px;margin-top:10px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{padding:5px 9px;text-align:left;vertical-align:top;border-bottom:1px solid #eef1f5}
thead th{position:sticky;top:0;background:#f7f9fb;cursor:pointer;user-select:none;
 white-space:nowrap;border-bottom:1px solid #dfe4ea;z-index:1}
thead th:hover{background:#edf1f6}
thead th.asc::after{content:" ▲";font-size:10px}thead th.desc::after{content:" ▼";font-size:10px}
tbody tr:nth-child(even){background:#fafbfd}tbody tr:hover{background:#f0f5fb}
td.n{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
td.desc,span.desc{font-family:ui-monospace,SFMono-Regular,Menlo,Consolas,monospace;font-size:12px;color:#3c4754}
td.desc{max-width:420px;overflow-wrap:anywhere}
.err{color:#a8322d;font-size:12px}
td.err{max-width:260px}
.star{color:#e0452b}
.badge{display:inline-block;color:#fff;border-radius:10px;padding:0 8px;font-size:11px;line-height:18px}
.tools{display:flex;gap:12px;align-items:center}
.tools input{flex:0 1 380px;padding:6px 10px;border:1px solid #c9d1da;border-radius:6px;font:inherit}
#trial-count{color:#6b7785;font-size:12px}
details.trial{border-bottom:1px solid #eef1f5}
details.trial>summary{cursor:pointer;padding:5px 2px;white-space:nowrap;overflow:hidden;text-overflow:ellipsis}
details.trial>summary>span{display:inline-block;vertical-align:middle}
details.trial>summary .sid{min-width:64px}details.trial>summary .sst{min-width:80px}
details.trial>summary .n{min-width:78px;font-variant-numeric:tabular-nums}
details.trial>summary .lat{min-width:150px}
details.trial[open]{background:#fbfcfe;padding-bottom:10px}
details.trial:target>summary,details.trial.hit>summary{background:#fff4e5}
.dgrid{display:grid;grid-template-columns:minmax(260px,1fr) 2fr;gap:16px;padding:8px 4px}
.dgrid>div{min-width:0}
.kv{width:auto;margin-bottom:8px}.kv th{color:#6b7785;font-weight:500;padding-right:16px;cursor:default}
.curve{min-height:240px}
.label{color:#6b7785;font-size:12px;margin-top:8px}
.curve .empty{padding-top:90px;text-align:center}
pre{background:#f7f9fb;border:1px solid #e8ecf1;border-radius:6px;padding:10px;font-size:12px;
 overflow:auto;max-height:420px;margin:6px 0 0}
#config summary{cursor:pointer}#config summary h2{margin:0}
"""

_JS = r"""
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("hwnas-data").textContent);
  var cfg = {displaylogo: false, responsive: true,
             modeBarButtonsToRemove: ["lasso2d", "select2d"]};

  function draw(id, fig) {
    var el = document.getElementById(id);
    if (!el || !fig || !window.Plotly) return;
    fig.data.forEach(function (tr) {  // hover texts are stored once per trial, by id
      if (tr.hovertext_from_ids) {
        tr.text = tr.customdata.map(function (i) { return data.hover[i]; });
        delete tr.hovertext_from_ids;
      }
    });
    var conf = fig.data.length ? cfg : {staticPlot: true};
    Plotly.newPlot(el, fig.data, fig.layout, conf).then(function () {
      el.on("plotly_click", function (ev) {
        var p = ev && ev.points && ev.points[0];
        if (p && p.customdata !== undefined && p.customdata !== null) {
          location.hash = "trial-" + p.customdata;
        }
      });
    });
  }
  draw("pareto-plot", data.pareto);
  draw("progress-plot", data.progress);
  draw("theta-plot", data.theta);
  draw("oneshot-cost-plot", data.oneshot_cost);
  draw("spos-plot", data.spos);

  // --- learning curves, drawn when a trial's details are first opened
  function drawCurve(d) {
    if (d.dataset.drawn) return;
    d.dataset.drawn = "1";
    var el = d.querySelector(".curve"), c = data.curves[d.dataset.id];
    if (!el) return;
    if (!c) { el.innerHTML = '<p class="empty">no learning curve recorded</p>'; return; }
    var tr = [];
    var line = function (key, name, color, axis, dash) {
      if (c[key]) tr.push({type: "scatter", mode: "lines+markers", x: c.epoch, y: c[key],
        name: name, yaxis: axis, line: {color: color, width: 2, dash: dash || "solid"},
        marker: {size: 4}});
    };
    line("train_loss", "train loss", "#9aa7b6", "y", "dot");
    line("val_loss", "val loss", "#3b73b9", "y");
    line("val_accuracy", "val accuracy", "#e0452b", "y2");
    Plotly.newPlot(el, tr, {
      height: 250, margin: {l: 50, r: 55, t: 10, b: 40},
      font: {family: "system-ui, sans-serif", size: 12, color: "#26303b"},
      xaxis: {title: {text: "epoch"}, gridcolor: "#edf0f4", zeroline: false,
              dtick: c.epoch.length <= 15 ? 1 : null},
      yaxis: {title: {text: "loss"}, gridcolor: "#edf0f4", zeroline: false},
      yaxis2: {title: {text: "val accuracy"}, overlaying: "y", side: "right",
               tickformat: ".0%", showgrid: false},
      legend: {orientation: "h", x: 0, y: 1.02, yanchor: "bottom"},
      hovermode: "x unified"
    }, cfg);
  }
  var trials = document.querySelectorAll("details.trial");
  for (var i = 0; i < trials.length; i++) {
    trials[i].addEventListener("toggle", function (ev) {
      if (ev.target.open) drawCurve(ev.target);
    });
  }
  function openFromHash() {
    var m = /^#trial-(.+)$/.exec(location.hash);
    if (!m) return;
    var d = document.getElementById("trial-" + decodeURIComponent(m[1]));
    if (!d) return;
    d.open = true;
    drawCurve(d);
    d.scrollIntoView({block: "start"});
  }
  window.addEventListener("hashchange", openFromHash);
  openFromHash();

  // --- sortable tables: numeric columns by data-v, blanks always last
  function sortBy(table, col, th) {
    var asc = th.className !== "asc", num = th.dataset.type === "num";
    var ths = table.tHead.rows[0].cells;
    for (var k = 0; k < ths.length; k++) ths[k].className = "";
    th.className = asc ? "asc" : "desc";
    var body = table.tBodies[0], rows = Array.prototype.slice.call(body.rows);
    var key = function (r) {
      var c = r.cells[col], v = c.dataset.v !== undefined ? c.dataset.v : c.textContent;
      if (v === "" || v === "None") return null;
      if (num) { var f = parseFloat(v); return isNaN(f) ? null : f; }
      return v.toLowerCase();
    };
    var keyed = rows.map(function (r, i) { return [key(r), i, r]; });
    keyed.sort(function (a, b) {
      if (a[0] === null || b[0] === null) {
        return a[0] === b[0] ? a[1] - b[1] : (a[0] === null ? 1 : -1);
      }
      var s = a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : a[1] - b[1];
      return asc ? s : -s;
    });
    var frag = document.createDocumentFragment();
    keyed.forEach(function (k) { frag.appendChild(k[2]); });
    body.appendChild(frag);
  }
  var tables = document.querySelectorAll("table.sortable");
  Array.prototype.forEach.call(tables, function (t) {
    Array.prototype.forEach.call(t.tHead.rows[0].cells, function (th, col) {
      th.addEventListener("click", function () { sortBy(t, col, th); });
    });
  });

  // --- free-text row filter for the all-trials table
  var box = document.getElementById("trial-filter");
  var table = document.getElementById("trials-table");
  if (box && table) {
    var rows = Array.prototype.slice.call(table.tBodies[0].rows);
    var text = rows.map(function (r) { return r.textContent.toLowerCase(); });
    box.addEventListener("input", function () {
      var q = box.value.trim().toLowerCase(), shown = 0;
      rows.forEach(function (r, i) {
        var hit = !q || text[i].indexOf(q) >= 0;
        r.style.display = hit ? "" : "none";
        shown += hit ? 1 : 0;
      });
      document.getElementById("trial-count").textContent =
        shown + " of " + rows.length + " trials";
    });
  }
})();
"""


# the report derives these from the trials itself; passing them again would repeat its cards
_SHOWN_BY_REPORT = {"trials", "counts", "best_accuracy", "pareto_size", "objectives"}


def write_study_report(study: Study, path: str | Path | None = None) -> Path:
    """(Re)write ``report.html`` of an experiment directory, or the report at ``path``."""
    trials = study.trials()
    return write_report(
        study.dir / "report.html" if path is None else Path(path),
        [t.to_dict() for t in trials],
        [t.id for t in study.pareto(trials)],
        study.objectives,
        # a study `hwnas train --out` made holds final trainings alone: no search to name
        title=f"hwnas {'train' if trials and all(t.stage == 'final' for t in trials) else 'search'}"
        f" — {study.dir.name}",
        config=study.config.to_json_dict(),
        summary={k: v for k, v in study.summary(trials).items() if k not in _SHOWN_BY_REPORT},
        oneshot=study.store.get_meta_json("oneshot"),
    )
