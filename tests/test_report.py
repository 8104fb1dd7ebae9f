"""Tests for the HTML search report: content, escaping, edge cases, and a real headless render."""

from __future__ import annotations

import json
import math
import random
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from hwnas.report import write_report
from hwnas.report.plots import front_sizes, pareto_figure

OBJECTIVES = [("accuracy", "max"), ("latency_ms", "min")]
EVIL = "<script>alert(1)</script>"
CHROMIUM = shutil.which("chromium") or (
    "/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None
)


def make_trials(n: int = 30, seed: int = 0) -> list[dict[str, Any]]:
    """A synthetic search: mostly complete trials, some pruned and failed, one running."""
    rng = random.Random(seed)
    t0 = 1_700_000_000.0
    trials: list[dict[str, Any]] = []
    for i in range(n):
        width = rng.choice([8, 16, 24, 32, 48, 64])
        depth = rng.randint(1, 6)
        macs = width * width * depth * rng.uniform(2e3, 8e3)
        params = width * width * depth * 9.0
        latency = 0.05 + macs / 2e7 * rng.uniform(0.8, 1.2)
        acc = min(0.99, 0.6 + 0.08 * math.log10(macs) - 0.3 + rng.uniform(-0.04, 0.04))
        roll = i % 10
        status = "failed" if roll == 7 else "pruned" if roll in (3, 8) else "complete"
        if i == n - 1:
            status = "running"
        cost = {
            "latency_ms": latency,
            "latency_spread": rng.uniform(0.01, 0.08),
            "params": params,
            "macs": macs,
            "peak_memory_bytes": width * 32 * 32 * 4.0,
            "model_bytes": params * 4,
            "model_bytes_int8": params,
        }
        metrics: dict[str, Any] = {}
        curve: list[dict[str, Any]] = []
        if status == "complete":
            metrics = {"accuracy": acc, **cost, "train_seconds": rng.uniform(5, 60)}
            epochs = rng.randint(3, 8)
            curve = [
                {
                    "epoch": e + 1,
                    "train_loss": 2.0 / (e + 1),
                    "val_loss": 2.2 / (e + 1) + 0.05,
                    "val_accuracy": acc * (1 - 0.5 / (e + 1)),
                }
                for e in range(epochs)
            ]
        elif status == "pruned":
            metrics = cost
        started = t0 + 40.0 * i
        trials.append(
            {
                "id": i,
                "status": status,
                "arch": {"stages": [{"depth": depth, "width": width}], "kernel": 3},
                "describe": f"d{depth} w{width} k3",
                "metrics": metrics,
                "error": (
                    f"latency_ms <= 2 (was {latency + 2:.1f})"
                    if status == "pruned"
                    else "RuntimeError: CUDA out of memory"
                    if status == "failed"
                    else None
                ),
                "parent_id": rng.randrange(i) if i > 3 else None,
                "started_at": started,
                "finished_at": None if status == "running" else started + rng.uniform(10, 60),
                "seed": i,
                "curve": curve,
            }
        )
    return trials


def pareto_of(trials: list[dict[str, Any]]) -> list[int]:
    """Brute-force Pareto set (accuracy max, latency min) of the complete trials."""
    done = [t for t in trials if t["status"] == "complete"]
    out = []
    for t in done:
        a, lat = t["metrics"]["accuracy"], t["metrics"]["latency_ms"]
        dominated = any(
            u["metrics"]["accuracy"] >= a
            and u["metrics"]["latency_ms"] <= lat
            and (u["metrics"]["accuracy"] > a or u["metrics"]["latency_ms"] < lat)
            for u in done
        )
        if not dominated:
            out.append(t["id"])
    return out


def data_blob(text: str) -> dict[str, Any]:
    m = re.search(r'<script id="hwnas-data" type="application/json">(.*?)</script>', text, re.S)
    assert m, "data blob missing"
    return json.loads(m.group(1))  # json.loads rejects nothing on NaN, so check strictly below


class _Resources(HTMLParser):
    """Collects external resource references: script src, link href, img/iframe src."""

    def __init__(self) -> None:
        super().__init__()
        self.external: list[str] = []
        self.inline_scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        for key in ("src", "href"):
            v = a.get(key) or ""
            if tag in ("script", "link", "img", "iframe") and re.match(r"\s*(https?:)?//", v):
                self.external.append(f"{tag} {key}={v}")
        if tag == "script":
            self._in_script = True
            self.inline_scripts.append("")

    def handle_endtag(self, tag: str) -> None:
        if tag == "script":
            self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.inline_scripts[-1] += data


@pytest.fixture
def trials() -> list[dict[str, Any]]:
    ts = make_trials(30)
    ts[4]["describe"] = EVIL
    ts[4]["error"] = "bad </script> & <b>"
    return ts


def test_report_written_self_contained_and_complete(tmp_path: Path, trials: list[dict]) -> None:
    config = {"search": {"strategy": "evolution", "trials": 30}, "note": "<i>x</i>"}
    summary = {
        "hypervolume": 0.4321,
        "elapsed_s": 1234.5,
        "target": "cpu",
        "dataset": "digits",
        "references": [
            {
                "reference": 0,
                "describe": "a",
                "dominated_by": [7, 9],
                "side_by_side": ["latency_ms"],
            },
            {"reference": 1, "describe": "b", "dominated_by": []},
        ],
    }
    out = write_report(
        tmp_path / "sub" / "report.html",
        trials,
        pareto_of(trials),
        OBJECTIVES,
        title="demo <search>",
        config=config,
        summary=summary,
    )
    assert out == tmp_path / "sub" / "report.html" and out.is_file()
    text = out.read_text(encoding="utf-8")

    parser = _Resources()
    parser.feed(text)
    assert parser.external == []
    assert not re.search(r"<(script|link)[^>]+(src|href)=[\"']?https?:", text)
    assert any("plotly.js v" in s and len(s) > 1_000_000 for s in parser.inline_scripts)

    for t in trials:
        assert f'id="trial-{t["id"]}"' in text
        assert f'<tr data-id="{t["id"]}">' in text
    assert 'id="pareto-plot"' in text and 'id="progress-plot"' in text
    assert "demo &lt;search&gt;" in text and "<i>x</i>" not in text
    assert "digits" in text and "cpu" in text and "0.4321" in text
    assert "reference nets after final training" in text
    assert "<b>#0 dominated by #7, #9 (latency_ms side by side); #1 not dominated</b>" in text
    assert "latency_ms &lt;= 2" in text

    data = data_blob(text)
    pareto = data["pareto"]
    assert [b["label"] for b in pareto["layout"]["updatemenus"][0]["buttons"]][:3] == [
        "latency (ms)",
        "MACs",
        "parameters",
    ]
    assert pareto["layout"]["xaxis"]["type"] == "log"
    highlighted = pareto["data"][2]["customdata"]
    assert sorted(highlighted) == sorted(pareto_of(trials))
    n_complete = sum(t["status"] == "complete" for t in trials)
    assert len(pareto["data"][0]["customdata"]) + len(highlighted) == n_complete
    assert set(data["curves"]) == {str(t["id"]) for t in trials if t["curve"]}
    plotted = {t["id"] for t in trials if t["status"] in ("complete", "pruned")}
    assert plotted <= {int(i) for i in data["hover"]}
    # the step line on the latency axis runs exactly through the Pareto set
    assert len(pareto["data"][1]["x"]) == len(highlighted)


def test_malicious_strings_are_escaped(tmp_path: Path, trials: list[dict]) -> None:
    text = write_report(tmp_path / "r.html", trials, [4], OBJECTIVES).read_text()
    assert EVIL not in text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text
    assert "bad </script>" not in text
    parser = _Resources()
    parser.feed(text)
    # plotly, the data blob and our own script: nothing injected
    assert len(parser.inline_scripts) == 3
    hover = data_blob(text)["hover"]["4"]
    assert "&lt;script&gt;" in hover and "<script>" not in hover


def test_the_metrics_a_search_is_judged_by_have_columns(tmp_path: Path) -> None:
    """A device's SRAM (an objective) and flash (a constraint) were in the trial details
    alone: the front and trial tables show every objective and bound, as `show` does."""
    ts = make_trials(8, seed=1)
    for t in ts:
        if isinstance(t.get("metrics"), dict):
            t["metrics"].update({"peak_sram_bytes@m7": 3328.0, "flash_bytes@m7": 4_648.0})
    objectives = [*OBJECTIVES, ("peak_sram_bytes@m7", "min")]
    config = {"constraints": ["flash_bytes@m7 <= 1048576", "latency_ms <= 2"]}
    text = write_report(
        tmp_path / "r.html", ts, pareto_of(ts), objectives, config=config
    ).read_text()
    for table in ("pareto-table", "trials-table"):
        head = re.search(rf'<table id="{table}".*?</thead>', text, re.S)
        assert head is not None
        names = re.findall(r"<th [^>]*>([^<]*)</th>", head.group(0))
        assert {"peak sram bytes@m7", "flash bytes@m7"} <= set(names), names
        assert "latency ms" not in names  # latencies have their own columns
    complete = sum(t["status"] == "complete" for t in ts)
    assert text.count(">3.25 KiB</td>") >= complete  # in the bytes' own format
    # the bounds are named in the header beside the objectives (they were in the config alone)
    assert "constraints: flash_bytes@m7 &lt;= 1048576, latency_ms &lt;= 2 · generated" in text


def test_nan_and_inf_become_null(tmp_path: Path) -> None:
    ts = make_trials(12, seed=3)
    ts[0]["metrics"].update(latency_spread=float("nan"), train_seconds=float("inf"))
    ts[1]["metrics"]["accuracy"] = float("nan")
    ts[2]["curve"] = [
        {"epoch": 1, "train_loss": float("nan"), "val_loss": 1.0},
        {"epoch": 2, "train_loss": 0.5, "val_loss": float("inf")},
    ]
    ts[5]["metrics"] = None
    del ts[6]["metrics"]
    text = write_report(tmp_path / "r.html", ts, [0, 1, 2], OBJECTIVES).read_text()
    m = re.search(r'<script id="hwnas-data" type="application/json">(.*?)</script>', text, re.S)
    assert m
    strict = json.loads(m.group(1), parse_constant=lambda c: pytest.fail(f"non-JSON {c}"))
    assert strict["curves"]["2"] == {
        "epoch": [1, 2],
        "train_loss": [None, 0.5],
        "val_loss": [1.0, None],
    }
    assert "NaN" not in m.group(1) and "Infinity" not in m.group(1)


@pytest.mark.parametrize("n", [0, 1])
def test_no_complete_trials(tmp_path: Path, n: int) -> None:
    ts = [t for t in make_trials(10) if t["status"] != "complete"][:n]
    text = write_report(tmp_path / "r.html", ts, [], OBJECTIVES, summary={}).read_text()
    pareto = data_blob(text)["pareto"]
    assert pareto["data"] == []
    assert "No complete trials yet" in pareto["layout"]["annotations"][0]["text"]
    assert "No Pareto set yet" in text


def test_front_sizes_incremental() -> None:
    ts = make_trials(40, seed=5)
    sizes = front_sizes(ts, OBJECTIVES)
    assert sizes[-1] == len(pareto_of(ts))
    assert all(s >= 0 for s in sizes) and len(sizes) == len(ts)


def test_a_promoted_net_counts_once_in_the_front_size_and_the_staircase() -> None:
    """A net read at 1 epoch and promoted to 3 stands once: its promotion replaces it, and
    what the lower reading hid stands again (the study's own front does the same)."""

    def t(i: int, acc: float, lat: float, src: int | None = None) -> dict:
        info = {} if src is None else {"promoted_from": src}
        m = {"accuracy": acc, "latency_ms": lat}
        return {"id": i, "status": "complete", "metrics": m, "info": info}

    # the promotion of 0 (a second latency reading, a hair slower) replaces it
    assert front_sizes([t(0, 0.50, 1.0), t(2, 0.60, 1.01, src=0)], OBJECTIVES) == [1, 1]
    ts = [t(0, 0.50, 1.0), t(1, 0.45, 1.0), t(2, 0.60, 1.01, src=0)]
    # 0 hid 1, which stands again beside the promotion once 0 leaves
    assert front_sizes(ts, OBJECTIVES) == [1, 1, 2]
    fig = pareto_figure(ts, [1, 2], OBJECTIVES)
    stair = next(d for d in fig["data"] if d.get("name") == "front on this axis")
    assert 0.5 not in stair["y"] and 0.6 in stair["y"] and 0.45 in stair["y"]


# --------------------------------------------------------------------------- real browser
class _Drawn(HTMLParser):
    """Counts class tokens of elements inside the element whose id is ``root``."""

    VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source"}

    def __init__(self, root: str) -> None:
        super().__init__()
        self.root, self.depth = root, 0
        self.classes: dict[str, int] = {}

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if self.depth == 0 and a.get("id") == self.root:
            self.depth = 1
            return
        if self.depth:
            for c in (a.get("class") or "").split():
                self.classes[c] = self.classes.get(c, 0) + 1
            if tag not in self.VOID:
                self.depth += 1

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.handle_starttag(tag, attrs)
        if self.depth and tag not in self.VOID:
            self.depth -= 1

    def handle_endtag(self, tag: str) -> None:
        if self.depth:
            self.depth -= 1


def drawn(dom: str, root: str) -> dict[str, int]:
    p = _Drawn(root)
    p.feed(dom)
    return p.classes


def chromium(tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    assert CHROMIUM is not None
    profile = tmp_path / f"profile-{len(list(tmp_path.glob('profile-*')))}"
    cmd = [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        "--virtual-time-budget=10000",
        *args,
    ]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (need /usr/bin/chromium)")
def test_report_renders_in_headless_chromium(tmp_path: Path) -> None:
    ts = make_trials(30)
    ts[4]["describe"] = EVIL
    report = write_report(tmp_path / "report.html", ts, pareto_of(ts), OBJECTIVES)
    n_complete = sum(t["status"] == "complete" for t in ts)

    dom = chromium(tmp_path, "--dump-dom", report.as_uri()).stdout
    pareto = drawn(dom, "pareto-plot")
    assert pareto.get("main-svg", 0) >= 1, "plotly did not draw the Pareto plot"
    assert pareto.get("point", 0) >= n_complete
    assert pareto.get("updatemenu-container", 0) >= 1 or pareto.get("updatemenu-header", 0) >= 1
    assert drawn(dom, "progress-plot").get("main-svg", 0) >= 1
    assert EVIL not in dom and "&lt;script&gt;alert(1)" in dom  # shown as text, never run

    # a #trial-N link opens that trial's details and draws its learning curve lazily
    tid = next(t["id"] for t in ts if t["curve"])
    dom = chromium(tmp_path, "--dump-dom", f"{report.as_uri()}#trial-{tid}").stdout
    assert drawn(dom, f"trial-{tid}").get("main-svg", 0) >= 1
    other = next(t["id"] for t in ts if t["curve"] and t["id"] != tid)
    assert drawn(dom, f"trial-{other}").get("main-svg", 0) == 0

    shot = tmp_path / "shot.png"
    chromium(tmp_path, f"--screenshot={shot}", "--window-size=1280,900", report.as_uri())
    assert shot.is_file() and shot.stat().st_size > 10_000
    pil = pytest.importorskip("PIL.Image")
    with pil.open(shot) as img:
        rgb = img.convert("RGB")
        assert rgb.size == (1280, 900)
        colors = rgb.getcolors(maxcolors=1 << 20) or []
        assert len(colors) > 50, "screenshot is (nearly) a single colour"


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (need /usr/bin/chromium)")
def test_one_shot_section_draws_theta_and_table_against_measured(tmp_path: Path) -> None:
    """A one-shot study's report shows theta per position over epochs (one heatmap per
    setting, switched by a dropdown) and each derived net's table cost against its measured
    cost; a study without one-shot history has no such section."""
    ts = make_trials(12)
    derived = [t for t in ts if t["status"] == "complete"][:4]
    for k, t in enumerate(derived):
        t["stage"] = "derived"
        t["info"] = {"op": "derive", "alpha": [0.1, 0.5][k % 2], "loss": "additive"}
        t["info"]["predicted_cost"] = t["metrics"]["latency_ms"] * 0.9
    choices = [["a", "b", "skip"]] * 4
    hist = [{"epoch": e, "probs": [[1 / 3 + 0.1 * e, 1 / 3, 1 / 3 - 0.1 * e]] * 4} for e in (1, 2)]
    oneshot = {
        "cost_metric": "latency_ms",
        "choices": choices,
        "settings": [
            {"label": "alpha=0.1", "history": hist},
            {"label": "alpha=0.5", "history": hist},
        ],
    }
    report = write_report(tmp_path / "r.html", ts, pareto_of(ts), OBJECTIVES, oneshot=oneshot)
    dom = chromium(tmp_path, "--dump-dom", report.as_uri()).stdout
    theta = drawn(dom, "theta-plot")
    assert theta.get("main-svg", 0) >= 1 and theta.get("hm", 0) >= 1  # a heatmap layer
    assert theta.get("updatemenu-container", 0) >= 1 or theta.get("updatemenu-header", 0) >= 1
    cost = drawn(dom, "oneshot-cost-plot")
    assert cost.get("main-svg", 0) >= 1 and cost.get("point", 0) >= len(derived)
    plain = write_report(tmp_path / "p.html", ts, pareto_of(ts), OBJECTIVES)
    assert 'id="theta-plot"' not in plain.read_text()


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not installed (need /usr/bin/chromium)")
def test_spos_section_draws_inherited_against_stand_alone_accuracy(tmp_path: Path) -> None:
    """A spos study's report plots every arch scored with inherited weights, the derived ones
    marked, and the derived nets' stand-alone accuracy; no theta heatmap (spos has none)."""
    ts = make_trials(12)
    derived = [t for t in ts if t["status"] == "complete"][:3]
    for t in derived:
        t["stage"] = "derived"
        t["info"] = {"op": "derive", "inherited_accuracy": 0.5}
    evals = [
        {"n": n, "arch": {}, "feasible": True,
         "metrics": {"accuracy": 0.3 + 0.01 * n, "latency_ms": 1.0 + 0.1 * n}}
        for n in range(20)
    ]  # fmt: skip
    oneshot = {"strategy": "spos", "evaluations": evals, "derived": [17, 18, 19]}
    report = write_report(tmp_path / "r.html", ts, pareto_of(ts), OBJECTIVES, oneshot=oneshot)
    dom = chromium(tmp_path, "--dump-dom", report.as_uri()).stdout
    plot = drawn(dom, "spos-plot")
    assert plot.get("main-svg", 0) >= 1 and plot.get("point", 0) >= 20 + len(derived)
    assert 'id="theta-plot"' not in report.read_text()


def test_theta_heatmap_has_one_column_per_op_when_positions_differ() -> None:
    """Positions offering different ops (skip only where the shape allows) share one set of
    columns; a position's missing op is blank, not another op's probability."""
    from hwnas.report.plots import theta_figure

    choices = [["a", "b"], ["a", "b", "skip"]]
    hist = [{"epoch": 1, "probs": [[0.3, 0.7], [0.2, 0.3, 0.5]]}]
    fig = theta_figure({"choices": choices, "settings": [{"label": "s", "history": hist}]})
    (trace,) = fig["data"]
    assert trace["x"] == ["e1 a", "e1 b", "e1 skip"]
    assert trace["z"] == [[0.3, 0.7, None], [0.2, 0.3, 0.5]]


def test_a_cost_axis_has_its_unit_for_a_labelled_or_unnamed_metric():
    """A board's latency (`latency_ms@m7`) or `model_bytes_int8` on the front plot's x axis
    said no unit; the metric vocabulary has it."""
    from hwnas.report.plots import cost_axis

    assert cost_axis("latency_ms@m7") == ("latency_ms@m7 (ms)", "")
    assert cost_axis("model_bytes_int8") == ("model_bytes_int8 (bytes)", "B")
    assert cost_axis("peak_sram_bytes@m7") == ("peak_sram_bytes@m7 (bytes)", "B")
    assert cost_axis("latency_ms") == ("latency (ms)", "")  # the named ones as before
    assert cost_axis("zc_synflow") == ("zc_synflow", "")


def test_each_timed_target_has_its_latency_column(tmp_path: Path) -> None:
    """A study timed on two targets (`latency_ms` and `latency_ms@h200`, as
    configs/cifar10_fast.yaml) showed the first alone in the front and trial tables."""
    ts = make_trials(12, seed=5)
    done = [t for t in ts if t["status"] == "complete"]
    for t in done:
        t["metrics"]["latency_ms@h200"] = t["metrics"]["latency_ms"] / 20
        t["metrics"]["latency_spread@h200"] = 0.125
    front = [done[0]["id"]]
    text = write_report(tmp_path / "r.html", ts, front, [*OBJECTIVES, ("latency_ms@h200", "min")])
    text = text.read_text()
    table = re.search(r'<table id="pareto-table".*?</table>', text, re.S)
    assert table
    heads = re.findall(r"<th[^>]*>(.*?)</th>", table.group(0))
    assert heads[2:4] == ["latency", "latency @h200"]
    gpu = done[0]["metrics"]["latency_ms@h200"]
    assert f'<td data-v="{gpu}" class="n">{gpu:.3f} ms ± 12.5 %</td>' in table.group(0)
    trials_heads = re.findall(
        r"<th[^>]*>(.*?)</th>", re.search(r'<table id="trials-table".*?</table>', text, re.S)[0]
    )
    assert "latency @h200" in trials_heads and "latency" in trials_heads
    plain = write_report(tmp_path / "p.html", make_trials(12, seed=5), front, OBJECTIVES)
    assert "latency @" not in plain.read_text()  # one target: one column, as before
    from hwnas.report.plots import latency_keys

    # an analytic target timing nothing: no empty column ahead of the labelled source's
    assert latency_keys([{"metrics": {"latency_ms@t": 1.0}}]) == ["latency_ms@t"]
    assert latency_keys([{"metrics": {"macs": 5.0}}]) == ["latency_ms"]  # none: as before


def test_a_net_trained_again_shows_its_final_mean_and_std(tmp_path: Path) -> None:
    """The tables showed the search weights' test accuracy (8 epochs, 75 %) of a front member
    that the final recipe took to 91.25 ± 0.14 % in 3 runs: the figure a user judges it by."""
    ts = make_trials(12, seed=5)
    done = [t for t in ts if t["status"] == "complete"]
    member, other = done[0], done[1]
    member["metrics"].update(
        test_accuracy=0.7569,
        final_test_accuracy=0.912533,
        final_test_accuracy_std=0.00142,
        final_runs=3,
        final_epochs=12,
    )
    other["metrics"]["test_accuracy"] = 0.8031
    run = {**member, "id": 99, "stage": "final", "parent_id": member["id"], "metrics": {}}
    text = write_report(tmp_path / "r.html", [*ts, run], [member["id"], other["id"]], OBJECTIVES)
    text = text.read_text()
    assert "<small>1 of them final training · " in text  # the card counts them apart
    # a final training's parent is the net it retrains, said so (no child of a mutation)
    assert f'retrains <a href="#trial-{member["id"]}">#{member["id"]}</a>' in text
    front = re.search(r'<table id="pareto-table".*?</table>', text, re.S)[0]
    trials = re.search(r'<table id="trials-table".*?</table>', text, re.S)[0]
    for table in (front, trials):
        assert '<td data-v="0.912533" class="n">91.25 % ± 0.14 % (3 × 12 ep)</td>' in table
        assert '<td data-v="0.8031" class="n">80.31 %</td>' in table  # no final runs: its own
        assert "75.69 %" not in table


def test_show_cells_keep_brackets_of_archs_and_errors():
    """Rich markup ate ``[...]``: FBNet's blocks and an error's shape vanished from `show`."""
    from types import SimpleNamespace

    from rich.console import Console

    from hwnas.cli import _arch_cell

    t = SimpleNamespace(
        describe="fbnet 16[skip] 24[k3e1,skip]",
        error="RuntimeError: expected input [1, 3, 32, 32]",
        info={"op": "derive", "cost_metric": "latency_ms", "cost_target": 2.0, "rank": 1},
    )
    console = Console(width=200, record=True)
    console.print(_arch_cell(t))
    assert console.export_text().strip() == (
        "target 2 latency_ms, pick 2: fbnet 16[skip] 24[k3e1,skip]  "
        "RuntimeError: expected input [1, 3, 32, 32]"
    )
    t.info = {"op": "derive", "alpha": 0.0, "loss": "additive", "rank": 0}  # darts: no cost
    console = Console(width=200, record=True)
    console.print(_arch_cell(t))
    assert console.export_text().startswith("fbnet 16[skip]")
    from hwnas.report.plots import fmt_arch  # the report's cell says the same

    trial = {"describe": t.describe, "info": {"op": "derive", "alpha": 2.5, "cost_metric": "macs"}}
    assert fmt_arch(trial) == "alpha 2.5 on macs: fbnet 16[skip] 24[k3e1,skip]"
    assert fmt_arch({"describe": "stem8 24x1", "info": {"op": "mutate"}}) == "stem8 24x1"
