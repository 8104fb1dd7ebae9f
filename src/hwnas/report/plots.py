"""Figure specs for the search report, as plain JSON-able dicts for ``Plotly.newPlot``.

Nothing here imports plotly: the figures are drawn in the browser by the inlined plotly.js, so
building a report stays fast and the Python side only shapes data. Also holds the value
formatting shared with :mod:`hwnas.report.html`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from hwnas.core.metrics import fmt_number, lookup

Trial = dict[str, Any]

STATUS_ORDER = ("complete", "pruned", "failed", "interrupted", "running")
STATUS_COLORS = {
    "complete": "#3b73b9",
    "pruned": "#d9822b",
    "failed": "#c23b3b",
    "interrupted": "#a58fbf",
    "running": "#7d8b99",
}
PARETO_COLOR = "#e0452b"
OTHER_COLOR = "#9aa7b6"

# Cost axes offered in the Pareto plot's dropdown: metric key -> (axis title, tick suffix).
COST_AXES: dict[str, tuple[str, str]] = {
    "latency_ms": ("latency (ms)", ""),
    "macs": ("MACs", ""),
    "params": ("parameters", ""),
    "peak_memory_bytes": ("peak activation memory (bytes)", "B"),
    "model_bytes": ("model size, fp32 (bytes)", "B"),
}


def cost_axis(key: str) -> tuple[str, str]:
    """An axis title and tick suffix for a cost: the named ones', else the metric with its
    unit (``latency_ms@m7 (ms)``, ``model_bytes_int8 (bytes)``): a board's latency had none."""
    if key in COST_AXES:
        return COST_AXES[key]
    m = lookup(key)
    if m is None or m.unit in ("", "count", "score"):
        return key, ""
    return f"{key} ({m.unit})", "B" if m.unit == "bytes" else ""


_FONT = "system-ui, -apple-system, 'Segoe UI', Roboto, Helvetica, Arial, sans-serif"


# ------------------------------------------------------------------------------- values
def num(v: Any) -> float | None:
    """``v`` as a finite float, else None (bools, strings, NaN and inf included)."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return None
    f = float(v)
    return f if math.isfinite(f) else None


def metric(trial: Trial, key: str) -> float | None:
    """A finite metric of a trial, or None when missing or not a number."""
    m = trial.get("metrics")
    return num(m.get(key)) if isinstance(m, dict) else None


def clean(obj: Any) -> Any:
    """A JSON-safe copy of ``obj``: NaN/inf become None, tuples lists, unknown types ``str``."""
    if obj is None or isinstance(obj, bool | int | str):
        return obj
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): clean(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | set | frozenset):
        return [clean(v) for v in obj]
    try:  # numpy scalars and the like
        item = obj.item()
    except (AttributeError, TypeError, ValueError):
        return str(obj)
    return clean(item) if isinstance(item, bool | int | float | str) else str(obj)


def fmt_si(v: float | None, digits: int = 3) -> str:
    """``12345678`` -> ``12.3 M``."""
    if v is None:
        return "–"
    a = abs(v)
    for div, suffix in ((1e12, " T"), (1e9, " G"), (1e6, " M"), (1e3, " k")):
        if a >= div:
            return f"{v / div:.{digits}g}{suffix}"
    return f"{v:.{digits}g}"


def fmt_bytes(v: float | None) -> str:
    """Binary-prefixed byte size: ``1536`` -> ``1.5 KiB``."""
    if v is None:
        return "–"
    a = abs(v)
    for div, suffix in ((1 << 30, "GiB"), (1 << 20, "MiB"), (1 << 10, "KiB")):
        if a >= div:
            return f"{v / div:.3g} {suffix}"
    return f"{v:.0f} B"


def fmt_pct(v: float | None, digits: int = 2) -> str:
    """A 0–1 fraction as a percentage."""
    return "–" if v is None else f"{100.0 * v:.{digits}f} %"


def tested_accuracy(trial: Trial) -> float | None:
    """The test accuracy a net is judged by: its final trainings' mean where it has them
    (``final_test_accuracy``), else the trial's own ``test_accuracy``."""
    final = metric(trial, "final_test_accuracy")
    return final if final is not None else metric(trial, "test_accuracy")


def fmt_test(trial: Trial, pct: Callable[[float | None], str] = fmt_pct) -> str:
    """``91.25 % ± 0.14 % (3 × 12 ep)`` for a net trained again by the final recipe (runs ×
    epochs: a net trained again at another length shows which), else its single test
    accuracy: the search's 8-epoch weights are not what the final nets reach. ``pct`` formats
    a fraction (``show`` writes ``91.25%``)."""
    final = metric(trial, "final_test_accuracy")
    if final is None:
        return pct(metric(trial, "test_accuracy"))
    std = metric(trial, "final_test_accuracy_std")  # none of one run
    runs, epochs = metric(trial, "final_runs"), metric(trial, "final_epochs")
    what = f"{runs or 1:.0f}" + (f" × {epochs:.0f} ep" if epochs is not None else "")
    pm = f" ± {pct(std)}" if std is not None else ""
    return f"{pct(final)}{pm} ({what})"


def derived_label(info: dict[str, Any]) -> str:
    """The setting a one-shot strategy derived a net for (its alpha or cost target, on which
    cost) and which of its picks it is; empty for any other trial. Nets of one study differ
    by it: ``show`` and the report put it before the arch."""
    if info.get("op") != "derive":
        return ""
    parts = []
    metric = info.get("cost_metric")  # none: darts, accuracy alone
    if metric is not None and "cost_target" in info:
        parts.append(f"target {fmt_number(info['cost_target'])} {metric}")
    elif metric is not None and "alpha" in info:
        beta = f" beta {info['beta']:g}" if "beta" in info else ""
        parts.append(f"alpha {info['alpha']:g}{beta} on {metric}")
    if info.get("rank"):
        parts.append(f"pick {info['rank'] + 1}")
    return ", ".join(parts)


def fmt_arch(trial: Trial) -> str:
    """A trial's arch as ``show`` and the report give it: after its one-shot setting."""
    describe = str(trial.get("describe") or "")
    label = derived_label(trial.get("info") or {})
    return f"{label}: {describe}" if label else describe


def fmt_ms(v: float | None) -> str:
    """Milliseconds with three significant digits (more below 1 ms)."""
    if v is None:
        return "–"
    return f"{v:.3g} ms" if abs(v) >= 1 else f"{v:.3f} ms"


def fmt_seconds(v: float | None) -> str:
    """A duration: ``42.1 s``, ``12 min 03 s`` or ``3 h 07 min``."""
    if v is None:
        return "–"
    if v < 60:
        return f"{v:.1f} s"
    m, s = divmod(int(round(v)), 60)
    if m < 60:
        return f"{m} min {s:02d} s"
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min"


def fmt_metric(key: str, v: Any) -> str:
    """Human text for one metric, chosen by the metric's name."""
    f = num(v)
    if f is None:
        return "–" if v is None or isinstance(v, float) else str(v)
    k = key.lower()
    if "accuracy" in k or k.endswith("_acc"):
        return fmt_pct(f)
    if k == "latency_spread" or k.endswith("_spread"):
        return f"± {100.0 * f:.1f} %"
    if k.endswith("_ms"):
        return fmt_ms(f)
    if "bytes" in k:
        return fmt_bytes(f)
    if k in ("macs", "flops", "params") or k.endswith(("_macs", "_flops", "_params")):
        return fmt_si(f)
    if k.endswith(("seconds", "_s")):
        return fmt_seconds(f)
    return f"{f:.4g}"


def latency_keys(trials: Sequence[Trial]) -> list[str]:
    """``latency_ms`` and each labelled latency (``latency_ms@h200``) some trial has, in that
    order: a study timed on several targets shows a column for each, not the first alone."""
    labelled: set[str] = set()
    plain = False
    for t in trials:
        m = t.get("metrics")
        if isinstance(m, dict):
            labelled.update(k for k in m if k.startswith("latency_ms@"))
            plain = plain or "latency_ms" in m
    # the target's own column, unless only labelled sources time (an analytic target)
    return [*(["latency_ms"] if plain or not labelled else []), *sorted(labelled)]


def fmt_latency(trial: Trial, key: str = "latency_ms") -> str:
    """``1.23 ms ± 2.0 %`` (the spread only when known) of ``key``, a latency metric."""
    suffix = key[len("latency_ms") :]
    lat, spread = metric(trial, key), metric(trial, f"latency_spread{suffix}")
    if lat is None:
        return "–"
    return fmt_ms(lat) + (f" ± {100.0 * spread:.1f} %" if spread is not None else "")


def _wrap(text: str, width: int = 90) -> list[str]:
    lines: list[str] = []
    cur = ""
    for word in text.split():
        if cur and len(cur) + 1 + len(word) > width:
            lines.append(cur)
            cur = word
        else:
            cur = f"{cur} {word}" if cur else word
    return [*lines, cur] if cur else lines


def hover_text(trial: Trial) -> str:
    """Hover label (plotly's small HTML subset; every user string escaped)."""
    e = html.escape
    parts = [f"<b>trial #{e(str(trial.get('id')))}</b> · {e(str(trial.get('status', '?')))}"]
    parts += [e(line) for line in _wrap(str(trial.get("describe") or ""))]
    metrics = trial.get("metrics") if isinstance(trial.get("metrics"), dict) else {}
    for k, v in (metrics or {}).items():
        parts.append(f"{e(str(k))}: {e(fmt_metric(str(k), v))}")
    if trial.get("error"):
        parts += [f"<i>{e(line)}</i>" for line in _wrap(str(trial["error"]))]
    return "<br>".join(parts)


# ------------------------------------------------------------------------------- Pareto
def _dominates(a: Sequence[float], b: Sequence[float], senses: Sequence[str]) -> bool:
    better = False
    for x, y, s in zip(a, b, senses, strict=True):
        if s == "max":
            x, y = -x, -y
        if x > y:
            return False
        better = better or x < y
    return better


def _promoted_from(trial: Trial) -> int | None:
    """The trial a feasible promotion ``trial`` trained further, else None."""
    src = (trial.get("info") or {}).get("promoted_from")
    if src is None or trial.get("status") != "complete" or trial.get("error"):
        return None
    return int(src)


def superseded_ids(trials: Iterable[Trial]) -> set[int]:
    """Ids of trials whose net a feasible promotion trained further (the study's rule, on the
    report's plain dicts): they stay plotted but leave the fronts drawn."""
    return {src for t in trials if (src := _promoted_from(t)) is not None}


def front_sizes(trials: Iterable[Trial], objectives: Sequence[tuple[str, str]]) -> list[int]:
    """Size of the non-dominated set after each trial of ``trials`` (in the given order); a
    trial leaves it once a promotion of its net completes (the same net is not counted twice)."""
    senses = [s for _, s in objectives]
    seen: dict[int, tuple[float, ...]] = {}  # every counted point so far, by position
    front: dict[int, tuple[float, ...]] = {}
    ids: dict[Any, int] = {}
    sizes: list[int] = []

    def add(i: int, p: tuple[float, ...]) -> None:
        if not any(_dominates(q, p, senses) or q == p for q in front.values()):
            for j in [j for j, q in front.items() if _dominates(p, q, senses)]:
                del front[j]
            front[i] = p

    for i, t in enumerate(trials):
        ids[t.get("id")] = i
        vals = [metric(t, k) for k, _ in objectives] if t.get("status") == "complete" else [None]
        if objectives and all(v is not None for v in vals):
            seen[i] = tuple(float(v) for v in vals if v is not None)
            add(i, seen[i])
        src = _promoted_from(t)
        gone = ids.get(src) if src is not None else None
        if gone is not None and seen.pop(gone, None) is not None and gone in front:
            front = {}
            for j, p in seen.items():  # what the source's point hid may stand again
                add(j, p)
        sizes.append(len(front))
    return sizes


def staircase(points: Iterable[tuple[float, float]]) -> tuple[list[float], list[float]]:
    """The 2-D front of (cost to minimise, score to maximise) points, sorted by cost."""
    xs: list[float] = []
    ys: list[float] = []
    best = -math.inf
    for x, y in sorted(points, key=lambda p: (p[0], -p[1])):
        if y > best:
            xs.append(x)
            ys.append(y)
            best = y
    return xs, ys


def cost_axes(trials: Sequence[Trial], objectives: Sequence[tuple[str, str]]) -> list[str]:
    """Cost metrics to offer on the x axis: minimised objectives first, then the usual ones."""
    keys = [k for k, s in objectives if s == "min"]
    keys += [k for k in COST_AXES if k not in keys]
    return [k for k in keys if any((metric(t, k) or 0.0) > 0 for t in trials)]


def score_key(objectives: Sequence[tuple[str, str]]) -> str:
    """The metric on the y axis: the first maximised objective, else ``accuracy``."""
    return next((k for k, s in objectives if s == "max"), "accuracy")


def _axis_style() -> dict[str, Any]:
    return {
        "showline": True,
        "linecolor": "#c3ccd6",
        "gridcolor": "#edf0f4",
        "zeroline": False,
        "ticks": "outside",
        "tickcolor": "#c3ccd6",
        "automargin": True,
    }


def _message_figure(text: str, height: int = 320) -> dict[str, Any]:
    hidden = {"visible": False}
    return {
        "data": [],
        "layout": {
            "height": height,
            "xaxis": hidden,
            "yaxis": hidden,
            "font": {"family": _FONT},
            "annotations": [
                {
                    "text": html.escape(text),
                    "showarrow": False,
                    "xref": "paper",
                    "yref": "paper",
                    "x": 0.5,
                    "y": 0.5,
                    "font": {"size": 16, "color": "#6b7785"},
                }
            ],
        },
    }


def pareto_figure(
    trials: Sequence[Trial], pareto_ids: Iterable[int], objectives: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """Score vs cost scatter with the search's Pareto set highlighted and a cost-axis dropdown.

    The step line is the 2-D front of the score against the *selected* cost axis; with two
    objectives and the objective's own axis selected it runs through the highlighted Pareto set.
    """
    ykey = score_key(objectives)
    done = [t for t in trials if t.get("status") == "complete" and metric(t, ykey) is not None]
    axes = cost_axes(done, objectives)
    if not done or not axes:
        why = "No complete trials yet" if not done else "No cost metrics recorded"
        return _message_figure(f"{why} — nothing to plot.")
    in_front = set(pareto_ids)
    front = sorted((t for t in done if t.get("id") in in_front), key=lambda t: t.get("id", 0))
    others = [t for t in done if t.get("id") not in in_front]
    pruned = [t for t in trials if t.get("status") == "pruned"]

    def xs(group: Sequence[Trial], key: str) -> list[float | None]:
        return [v if (v := metric(t, key)) is not None and v > 0 else None for t in group]

    def err(group: Sequence[Trial]) -> dict[str, Any]:
        arr = [
            (metric(t, "latency_ms") or 0.0) * (metric(t, "latency_spread") or 0.0) for t in group
        ]
        return {
            "type": "data",
            "array": arr,
            "visible": axes[0] == "latency_ms",
            "thickness": 1,
            "width": 0,
        }

    def points(group: Sequence[Trial]) -> dict[str, Any]:
        return {
            "type": "scatter",
            "mode": "markers",
            "x": xs(group, axes[0]),
            "y": [metric(t, ykey) for t in group],
            "text": [hover_text(t) for t in group],
            "customdata": [t.get("id") for t in group],
            "hovertemplate": "%{text}<extra></extra>",
        }

    gone = superseded_ids(trials)  # a promoted net's earlier reading draws no step

    def stair(key: str) -> tuple[list[float], list[float]]:
        pts = [
            (x, y)
            for t in done
            if t.get("id") not in gone
            and (x := metric(t, key))
            and x > 0
            and (y := metric(t, ykey))
        ]
        return staircase(pts)

    sx, sy = stair(axes[0])
    data = [
        {
            **points(others),
            "name": f"other complete ({len(others)})",
            "marker": {"color": OTHER_COLOR, "size": 7, "opacity": 0.7},
            "error_x": {**err(others), "color": "#c9d1da"},
        },
        {
            "type": "scatter",
            "mode": "lines",
            "x": sx,
            "y": sy,
            "name": "front on this axis",
            "line": {"shape": "hv", "color": PARETO_COLOR, "width": 1.5, "dash": "dot"},
            "hoverinfo": "skip",
        },
        {
            **points(front),
            "name": f"Pareto set ({len(front)})",
            "marker": {
                "color": PARETO_COLOR,
                "size": 11,
                "line": {"color": "#ffffff", "width": 1.5},
            },
            "error_x": {**err(front), "color": PARETO_COLOR},
        },
        {
            **points(pruned),
            "y": [0.025] * len(pruned),
            "yaxis": "y2",
            "name": f"pruned, at cost ({len(pruned)})",
            "marker": {
                "symbol": "x-thin-open",
                "size": 8,
                "color": STATUS_COLORS["pruned"],
                "line": {"width": 1.5},
            },
        },
    ]

    def dtick(key: str) -> str:
        vals = [v for t in done if (v := metric(t, key)) is not None and v > 0]
        return "D1" if vals and max(vals) / min(vals) < 30 else "D2"

    ys = [[metric(t, ykey) for t in others], None, [metric(t, ykey) for t in front]]
    buttons = []
    for key in axes:
        fx, fy = stair(key)
        label, suffix = cost_axis(key)
        lat = key == "latency_ms"
        buttons.append(
            {
                "label": label,
                "method": "update",
                "args": [
                    {
                        "x": [xs(others, key), fx, xs(front, key), xs(pruned, key)],
                        "y": [ys[0], fy, ys[2], [0.025] * len(pruned)],
                        "error_x.visible": [lat, False, lat, False],
                    },
                    {
                        "xaxis.title.text": label,
                        "xaxis.ticksuffix": suffix,
                        "xaxis.dtick": dtick(key),
                    },
                ],
            }
        )
    label0, suffix0 = cost_axis(axes[0])
    layout = {
        "height": 540,
        "margin": {"l": 70, "r": 20, "t": 70, "b": 60},
        "font": {"family": _FONT, "size": 13, "color": "#26303b"},
        "hovermode": "closest",
        "hoverlabel": {"align": "left", "bgcolor": "#ffffff", "font": {"size": 12}},
        "xaxis": {
            **_axis_style(),
            "type": "log",
            "title": {"text": label0},
            "ticksuffix": suffix0,
            "exponentformat": "SI",
            "dtick": dtick(axes[0]),
        },
        "yaxis": {
            **_axis_style(),
            "title": {"text": f"validation {ykey}" if ykey == "accuracy" else ykey},
            "tickformat": ".0%" if "acc" in ykey else None,
        },
        "yaxis2": {"overlaying": "y", "range": [0, 1], "visible": False, "fixedrange": True},
        "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
        "updatemenus": [
            {
                "type": "dropdown",
                "buttons": buttons,
                "active": 0,
                "showactive": True,
                "x": 0.0,
                "xanchor": "left",
                "y": 1.02,
                "yanchor": "bottom",
                "pad": {"l": 62},
                "bgcolor": "#ffffff",
                "bordercolor": "#c3ccd6",
                "font": {"size": 12},
            }
        ],
        "annotations": [
            {
                "text": "cost:",
                "showarrow": False,
                "xref": "paper",
                "yref": "paper",
                "x": 0.0,
                "y": 1.035,
                "xanchor": "left",
                "yanchor": "bottom",
                "font": {"size": 12, "color": "#56616d"},
            }
        ],
    }
    return {"data": data, "layout": layout}


# ----------------------------------------------------------------------------- progress
def finish_order(trials: Sequence[Trial]) -> list[Trial]:
    """Trials in the order they finished (unfinished ones last, ties by id)."""

    def key(t: Trial) -> tuple[bool, float, int]:
        fin = num(t.get("finished_at"))
        tid = t.get("id")
        return (fin is None, fin if fin is not None else 0.0, tid if isinstance(tid, int) else 0)

    return sorted(trials, key=key)


def _time_axis(trials: Sequence[Trial]) -> tuple[list[float | None], str] | None:
    starts = [s for t in trials if (s := num(t.get("started_at"))) is not None]
    ends = [num(t.get("finished_at")) for t in trials]
    t0 = min(starts + [e for e in ends if e is not None], default=None)
    if t0 is None or all(e is None for e in ends):
        return None
    span = max(e for e in ends if e is not None) - t0
    div, unit = (3600.0, "h") if span > 7200 else (60.0, "min") if span > 120 else (1.0, "s")
    return [None if e is None else (e - t0) / div for e in ends], f"elapsed time ({unit})"


def progress_figure(
    trials: Sequence[Trial], objectives: Sequence[tuple[str, str]]
) -> dict[str, Any]:
    """Best-so-far score and Pareto-front size over the search, with a per-trial status strip."""
    if not trials:
        return _message_figure("No trials yet.", height=300)
    ykey = score_key(objectives)
    order = finish_order(trials)
    index: list[float | None] = [float(i + 1) for i in range(len(order))]
    timed = _time_axis(order)
    best: list[float | None] = []
    cur: float | None = None
    for t in order:
        v = metric(t, ykey) if t.get("status") == "complete" else None
        if v is not None and (cur is None or v > cur):
            cur = v
        best.append(cur)
    sizes = front_sizes(order, objectives)

    pos = {id(t): i for i, t in enumerate(order)}
    data: list[dict[str, Any]] = []
    traces_x: list[list[int]] = []  # per trace: which positions of ``order`` it plots
    for status in [
        *STATUS_ORDER,
        *sorted({str(t.get("status")) for t in order} - set(STATUS_ORDER)),
    ]:
        group = [t for t in order if str(t.get("status")) == status]
        if not group:
            continue
        color = STATUS_COLORS.get(status, "#555555")
        scored = [t for t in group if metric(t, ykey) is not None]
        if scored:
            traces_x.append([pos[id(t)] for t in scored])
            data.append(
                {
                    "type": "scatter",
                    "mode": "markers",
                    "name": f"{status} ({len(group)})",
                    "legendgroup": status,
                    "y": [metric(t, ykey) for t in scored],
                    "text": [hover_text(t) for t in scored],
                    "customdata": [t.get("id") for t in scored],
                    "hovertemplate": "%{text}<extra></extra>",
                    "marker": {"color": color, "size": 6, "opacity": 0.75},
                }
            )
        traces_x.append([pos[id(t)] for t in group])
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "name": f"{status} ({len(group)})",
                "legendgroup": status,
                "showlegend": not scored,
                "yaxis": "y3",
                "y": [status] * len(group),
                "text": [hover_text(t) for t in group],
                "customdata": [t.get("id") for t in group],
                "hovertemplate": "%{text}<extra></extra>",
                "marker": {
                    "symbol": "line-ns-open",
                    "color": color,
                    "size": 9,
                    "line": {"width": 1.5},
                },
            }
        )
    all_pos = list(range(len(order)))
    traces_x.append(all_pos)
    data.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": f"best {ykey} so far",
            "y": best,
            "line": {"shape": "hv", "color": "#1f3f66", "width": 2.5},
            "hovertemplate": f"best {ykey}: %{{y:.2%}}<extra></extra>",
        }
    )
    traces_x.append(all_pos)
    data.append(
        {
            "type": "scatter",
            "mode": "lines",
            "name": "Pareto-front size",
            "yaxis": "y2",
            "y": sizes,
            "line": {"shape": "hv", "color": PARETO_COLOR, "width": 2},
            "hovertemplate": "front size: %{y}<extra></extra>",
        }
    )

    def pick(values: list[float | None]) -> list[list[float | None]]:
        return [[values[i] for i in positions] for positions in traces_x]

    few = 1 if len(order) <= 12 else None  # integer ticks for tiny searches
    for trace, xs in zip(data, pick(index), strict=True):
        trace["x"] = xs
    buttons = [
        {
            "label": "by trial #",
            "method": "update",
            "args": [
                {"x": pick(index)},
                {"xaxis.title.text": "trials finished", "xaxis.dtick": few},
            ],
        }
    ]
    if timed is not None:
        buttons.append(
            {
                "label": "by time",
                "method": "update",
                "args": [
                    {"x": pick(timed[0])},
                    {"xaxis.title.text": timed[1], "xaxis.dtick": None},
                ],
            }
        )
    statuses = [d["y"][0] for d in data if d.get("yaxis") == "y3"]
    layout: dict[str, Any] = {
        "height": 460,
        "margin": {"l": 70, "r": 70, "t": 60, "b": 55},
        "font": {"family": _FONT, "size": 13, "color": "#26303b"},
        "hovermode": "closest",
        "hoverlabel": {"align": "left", "bgcolor": "#ffffff", "font": {"size": 12}},
        "xaxis": {
            **_axis_style(),
            "title": {"text": "trials finished"},
            "anchor": "y3",
            "dtick": few,
        },
        "yaxis": {
            **_axis_style(),
            "domain": [0.26, 1.0],
            "title": {"text": ykey},
            "tickformat": ".0%" if "acc" in ykey else None,
            **({} if any(b is not None for b in best) else {"range": [0, 1]}),
        },
        "yaxis2": {
            **_axis_style(),
            "overlaying": "y",
            "side": "right",
            "showgrid": False,
            "rangemode": "tozero",
            "tickmode": "linear",
            "tick0": 0,
            "dtick": max(1, math.ceil(max(sizes, default=0) / 6)),
            "title": {"text": "Pareto-front size", "font": {"color": PARETO_COLOR}},
            "tickfont": {"color": PARETO_COLOR},
        },
        "yaxis3": {
            **_axis_style(),
            "domain": [0.0, 0.07 * len(statuses) + 0.02],
            "type": "category",
            "categoryorder": "array",
            "categoryarray": list(reversed(statuses)),
            "showgrid": False,
            "fixedrange": True,
            "ticks": "",
        },
        "legend": {"orientation": "h", "x": 1, "xanchor": "right", "y": 1.02, "yanchor": "bottom"},
    }
    if len(buttons) > 1:
        layout["updatemenus"] = [
            {
                "type": "buttons",
                "direction": "right",
                "buttons": buttons,
                "active": 0,
                "x": 0.0,
                "xanchor": "left",
                "y": 1.02,
                "yanchor": "bottom",
                "bgcolor": "#ffffff",
                "bordercolor": "#c3ccd6",
                "font": {"size": 12},
            }
        ]
    return {"data": data, "layout": layout}


def curve_data(trial: Trial) -> dict[str, list[float | None]] | None:
    """A trial's learning curve as column arrays (rounded), or None when it has none."""
    rows = [r for r in trial.get("curve") or [] if isinstance(r, dict)]
    if not rows:
        return None
    cols: dict[str, list[float | None]] = {}
    for key in ("epoch", "train_loss", "val_loss", "val_accuracy"):
        vals = [num(r.get(key)) for r in rows]
        if any(v is not None for v in vals):
            cols[key] = [None if v is None else float(f"{v:.5g}") for v in vals]
    if "epoch" not in cols:
        cols["epoch"] = [float(i + 1) for i in range(len(rows))]
    return cols


# ------------------------------------------------------------------ one-shot search
def theta_figure(oneshot: dict[str, Any]) -> dict[str, Any]:
    """How theta evolved: per setting (a dropdown), each position's probability of every op
    over the search epochs, as a heatmap of positions x (epoch, op)."""
    settings = oneshot.get("settings") or []
    choices = oneshot.get("choices") or []
    if not settings or not choices:
        return _message_figure("no theta history in this study")
    traces, buttons = [], []
    for k, s in enumerate(settings):
        hist = s.get("history") or []
        # positions may offer different ops (skip only where the shape allows): one column
        # per op of any position, blank where a position lacks it
        ops = list(dict.fromkeys(op for row in choices for op in row))
        x = [f"e{h['epoch']} {op}" for h in hist for op in ops]
        z = [
            [
                h["probs"][j][choices[j].index(op)] if op in choices[j] else None
                for h in hist
                for op in ops
            ]
            for j in range(len(choices))
        ]
        traces.append(
            {
                "type": "heatmap",
                "x": x,
                "y": [f"pos {j}" for j in range(len(choices))],
                "z": z,
                "zmin": 0,
                "zmax": 1,
                "colorscale": "Blues",
                "reversescale": True,  # plotly.js's Blues runs dark to light
                "visible": k == 0,
                "name": s.get("label", f"setting {k}"),
                "hovertemplate": "%{y}, %{x}: p=%{z:.3f}<extra></extra>",
            }
        )
        buttons.append(
            {
                "label": s.get("label", f"setting {k}"),
                "method": "update",
                "args": [{"visible": [i == k for i in range(len(settings))]}],
            }
        )
    return {
        "data": traces,
        "layout": {
            "height": 120 + 16 * len(choices),
            "margin": {"l": 60, "r": 20, "t": 40, "b": 90},
            "font": {"family": _FONT},
            "xaxis": {"title": {"text": "epoch and op"}, "tickangle": -60, "automargin": True},
            "yaxis": {"autorange": "reversed"},
            "updatemenus": [{"buttons": buttons, "x": 0, "y": 1.12, "xanchor": "left"}],
        },
    }


def expected_vs_measured_figure(oneshot: dict[str, Any], trials: Sequence[Trial]) -> dict[str, Any]:
    """The cost theta's table predicted for each derived net against the cost measured on
    the target, with the line of perfect agreement."""
    cost_key = str(oneshot.get("cost_metric", "latency_ms"))
    pts: list[tuple[float, float, Trial]] = []
    for t in trials:
        if t.get("stage") != "derived" or t.get("status") != "complete":
            continue
        p, m = num((t.get("info") or {}).get("predicted_cost")), metric(t, cost_key)
        if p is not None and m is not None:
            pts.append((p, m, t))
    if not pts:
        return _message_figure("no derived net measured yet")
    lo = min(min(p, m) for p, m, _ in pts)
    hi = max(max(p, m) for p, m, _ in pts)
    return {
        "data": [
            {
                "type": "scatter",
                "mode": "markers",
                "x": [p for p, _, _ in pts],
                "y": [m for _, m, _ in pts],
                "customdata": [t.get("id") for _, _, t in pts],
                "text": [f"#{t.get('id')} {html.escape(_setting_label(t))}" for _, _, t in pts],
                "hovertemplate": "%{text}<br>table %{x:.4g}, measured %{y:.4g}<extra></extra>",
                "name": "derived nets",
            },
            {
                "type": "scatter",
                "mode": "lines",
                "x": [lo, hi],
                "y": [lo, hi],
                "line": {"dash": "dot", "color": "#8a96a3"},
                "name": "measured = table",
                "hoverinfo": "skip",
            },
        ],
        "layout": {
            "height": 380,
            "font": {"family": _FONT},
            "xaxis": {**_axis_style(), "title": {"text": f"{cost_key} from the choice table"}},
            "yaxis": {**_axis_style(), "title": {"text": f"{cost_key} measured"}},
        },
    }


def spos_figure(oneshot: dict[str, Any], trials: Sequence[Trial]) -> dict[str, Any]:
    """What SPOS's search saw against what stand-alone training gave: every arch scored with
    inherited weights at its cost, the derived ones marked, and each derived net's stand-alone
    accuracy at its measured cost (a gap between the two is the supernet's ranking error)."""
    evals = oneshot.get("evaluations") or []
    if not evals:
        return _message_figure("no arch scored with inherited weights")
    cost = next(
        (k for k in ("latency_ms", "macs", "params") if num(evals[0]["metrics"].get(k))), None
    )
    if cost is None:
        return _message_figure("the scored archs have no cost to plot against")
    chosen = set(oneshot.get("derived") or [])

    def trace(rows: list[dict[str, Any]], name: str, marker: dict[str, Any]) -> dict[str, Any]:
        return {
            "type": "scatter",
            "mode": "markers",
            "x": [r["metrics"][cost] for r in rows],
            "y": [r["metrics"]["accuracy"] for r in rows],
            "name": name,
            "marker": marker,
            "hovertemplate": f"{cost} %{{x:.4g}}, inherited accuracy %{{y:.4f}}<extra></extra>",
        }

    data = [
        trace([e for e in evals if e["n"] not in chosen], "scored (inherited weights)",
              {"color": "#b8c2cc", "size": 5}),
        trace([e for e in evals if e["n"] in chosen], "derived (inherited weights)",
              {"color": "#1f77b4", "size": 9, "symbol": "diamond"}),
    ]  # fmt: skip
    alone = [
        t
        for t in trials
        if t.get("stage") == "derived"
        and t.get("status") == "complete"
        and metric(t, cost) is not None
        and metric(t, "accuracy") is not None
    ]
    if alone:
        data.append(
            {
                "type": "scatter",
                "mode": "markers",
                "x": [metric(t, cost) for t in alone],
                "y": [metric(t, "accuracy") for t in alone],
                "customdata": [t.get("id") for t in alone],
                "name": "derived, trained stand-alone",
                "marker": {"color": "#d62728", "size": 9},
                "hovertemplate": f"#%{{customdata}}: {cost} %{{x:.4g}}, "
                "accuracy %{y:.4f}<extra></extra>",
            }
        )
    return {
        "data": data,
        "layout": {
            "height": 400,
            "font": {"family": _FONT},
            "xaxis": {**_axis_style(), "title": {"text": cost}},
            "yaxis": {**_axis_style(), "title": {"text": "validation accuracy"}},
        },
    }


def _setting_label(t: Trial) -> str:
    info = t.get("info") or {}
    if info.get("cost_target") is not None:
        return f"target {info['cost_target']}"
    if info.get("loss") == "multiplicative":
        return f"beta {info.get('beta')}"
    return f"alpha {info.get('alpha')}"
