"""Read-only view of an experiment directory: trials, Pareto front, report files.

Used by ``hwnas show`` / ``report`` / ``export`` and by the running search alike, so the front
a user reads is computed one way only. Imports no torch.
"""

from __future__ import annotations

import json
import logging
import math
import os
import re
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

from hwnas.core.pareto import Objectives, as_minimisation, hypervolume, pareto_indices
from hwnas.experiment.config import ExperimentConfig, validate_config
from hwnas.experiment.final import against_references, timed_together
from hwnas.experiment.store import Store, StoreError, Trial, dumps

log = logging.getLogger("hwnas")


def busy_seconds(spans: list[tuple[float, float]]) -> float:
    """Seconds during which at least one of the (start, end) spans ran: a study's elapsed
    time without the pauses between the calls that resumed it (the first to last trial
    counted a night between two calls as search time)."""
    total, reach = 0.0, float("-inf")
    for start, end in sorted(spans):
        if end > reach:
            total += end - max(start, reach)
            reach = end
    return total


def stored_config(path: Path, raw: Any) -> ExperimentConfig:
    """The config a study stored, validated; a corrupt one is a one-line error naming it.

    Keys this version no longer has (an option removed since the study was made) are dropped
    with a warning, not refused: the study's trials stay readable by ``show``, ``report`` and
    ``export`` after an upgrade. Anything else invalid is an error (the stored config's first
    one). A valid config is validated once: every open of a study passes here."""
    from hwnas.core.errors import ConfigError

    data, first = raw, None
    section = raw.get("data") if isinstance(raw, dict) else None
    if isinstance(section, dict) and section.get("name") == "digits" and section.get("path"):
        # accepted (and ignored) before such a path was refused: the study stays readable
        data = json.loads(json.dumps(raw))
        del data["data"]["path"]
    dropped: list[str] = []
    while True:  # each pass drops a key or ends: at most _MAX_DROPPED + 1 validations
        try:
            cfg = validate_config(data)
        except ConfigError as exc:
            first = first or exc
            m = _UNKNOWN_KEY.fullmatch(str(exc))
            if data is raw:
                data = json.loads(json.dumps(raw))  # dropped from a copy, never the caller's
            if m is None or len(dropped) == _MAX_DROPPED or not _delete(data, m[1].split(".")):
                # the error that stops here, not a key dropped before it
                shown = first if m is not None else exc
                kind = _UNKNOWN_KIND.search(str(shown))
                hint = (
                    f"; the study was made with a plugin that registers {kind[1]} "
                    f"{kind[2]!r}: install that plugin here to read it"
                    if kind
                    else ""
                )
                raise StoreError(
                    f"{path}: its stored config is not valid ({shown}){hint}"
                ) from None
            dropped.append(m[1])
            continue
        if dropped:
            log.warning(
                "%s: stored config keys this version no longer has are ignored: %s",
                path,
                ", ".join(dropped),
            )
        return cfg


#: the one-line wording of an unknown key (hwnas.core.config.format_error)
_UNKNOWN_KEY = re.compile(r"config: ([\w.-]+): unknown key")
_MAX_DROPPED = 20
#: the wording of a kind no registry knows (hwnas.core.registry): a plugin's, not installed
_UNKNOWN_KIND = re.compile(r"unknown ([\w-]+) kind '([^']+)'")


def _delete(node: Any, keys: list[str]) -> bool:
    """Delete the key at dotted ``keys`` (list items by index) from nested ``node``."""
    for k in keys[:-1]:
        if isinstance(node, dict) and k in node:
            node = node[k]
        elif isinstance(node, list) and k.isdigit() and int(k) < len(node):
            node = node[int(k)]
        else:
            return False
    if isinstance(node, dict) and keys[-1] in node:
        del node[keys[-1]]
        return True
    return False


def is_feasible(trial: Trial) -> bool:
    return trial.status == "complete" and not trial.error


def superseded(trials: list[Trial]) -> set[int]:
    """Ids of trials a feasible promotion evaluated again at a higher fidelity: the same net,
    trained further, answers for them (their readings stay in the study). A promotion that
    failed, or broke a constraint after training, leaves its source standing."""
    return {
        int(t.info["promoted_from"])
        for t in trials
        if is_feasible(t) and t.info.get("promoted_from") is not None
    }


def pareto_front(trials: list[Trial], objectives: Objectives) -> list[Trial]:
    """Feasible complete trials that no other dominates (ties: the cheaper model); a trial
    that a completed promotion superseded is none (its net would stand on the front twice,
    once at the lower fidelity, as two readings of its latency differ)."""
    gone = superseded(trials)
    ok = [t for t in trials if is_feasible(t) and t.id not in gone]
    return [ok[i] for i in pareto_indices([t.metrics for t in ok], objectives)]


#: config sections whose ``path`` / ``weights`` strings name files (relative ones are read
#: from the directory the search ran in)
_FILE_SECTIONS = ("data", "estimator", "target", "supernet")


def rebased(raw: Any, start_dir: str | None) -> Any:
    """The stored config with each relative file path that does not exist from here but does
    from ``start_dir`` (where the search ran) made absolute, so ``show``, ``report``,
    ``export`` and ``train`` read a study from any directory. A path that resolves from here
    is kept as written: the trial keys hash the estimator's section, and a resume from the
    search's own directory must find its trials again."""
    if not start_dir or not isinstance(raw, dict):
        return raw
    out = json.loads(json.dumps(raw))

    def walk(node: Any) -> None:
        if isinstance(node, list):
            for item in node:
                walk(item)
        if not isinstance(node, dict):
            return
        for key, value in node.items():
            if key in ("path", "weights") and isinstance(value, str) and value:
                p = Path(value).expanduser()
                there = Path(start_dir) / p
                if not p.is_absolute() and not p.exists() and there.exists():
                    node[key] = str(there)
            else:
                walk(value)

    for section in _FILE_SECTIONS:
        walk(out.get(section))
    return out


def along_front(objectives: Objectives) -> Callable[[Trial], float]:
    """The order a front is listed in (``pareto.json``, the search's summary): by its first
    cost objective (an SRAM front listed by MACs came out of order), else latency, MACs."""
    costs = [m for m, d in objectives if d == "min"] + ["latency_ms", "macs"]

    def key(t: Trial) -> float:
        return next((float(t.metrics[k]) for k in costs if k in t.metrics), 0.0)

    return key


class Study:
    """An experiment directory on disk."""

    def __init__(self, out_dir: str | Path, *, readonly: bool = False) -> None:
        self.dir = Path(out_dir)
        if self.dir.name == Store.FILENAME and self.dir.is_file():  # the study's own file
            self.dir = self.dir.parent
        if not self.dir.is_dir():
            raise StoreError(f"{self.dir}: no such experiment directory")
        self.store = Store(self.dir / Store.FILENAME, create=False, readonly=readonly)
        try:
            raw = self.store.get_meta_json("config")
            if raw is None:
                raise StoreError(f"{self.dir / Store.FILENAME}: holds no experiment config")
            start = self.store.get_meta_json("start_dir")
            self.config: ExperimentConfig = stored_config(self.store.path, rebased(raw, start))
        except BaseException:
            self.store.close()
            raise
        self._truth: (
            tuple[list[tuple[float, ...]], list[float], dict[str, dict[str, float]]] | None
        ) = None

    @property
    def objectives(self) -> list[tuple[str, str]]:
        return [(o.metric, o.direction) for o in self.config.objectives]

    def trials(self) -> list[Trial]:
        """Every trial; while no writer holds the study, one left ``running`` says
        ``interrupted`` (its writer died or was stopped: it is not running, and the API,
        ``show`` and ``show --json`` say the same). A writer holds the lock: it sees its own."""
        trials = self.store.trials()
        if any(t.status == "running" for t in trials):
            from hwnas.experiment.lock import StudyLock

            if StudyLock(self.dir).writer_gone():
                trials = [
                    replace(t, status="interrupted") if t.status == "running" else t for t in trials
                ]
        return trials

    def pareto(self, trials: list[Trial] | None = None) -> list[Trial]:
        return pareto_front(self.trials() if trials is None else trials, self.objectives)

    def weights_path(self, trial_id: int) -> Path:
        return self.dir / "weights" / f"trial_{trial_id}.pt"

    def summary(self, trials: list[Trial] | None = None) -> dict[str, Any]:
        trials = self.trials() if trials is None else trials
        front = self.pareto(trials)
        counts: dict[str, int] = {}
        for t in trials:
            counts[t.status] = counts.get(t.status, 0) + 1
        accs = [t.metrics["accuracy"] for t in trials if is_feasible(t) and "accuracy" in t.metrics]
        out: dict[str, Any] = {
            "trials": len(trials),
            "counts": counts,
            "best_accuracy": max(accs) if accs else None,
            "pareto_size": len(front),
            "objectives": self.objectives,
            "target": self.config.target.name,
            "dataset": (
                Path(table).name
                if (table := getattr(self.config.estimator, "path", None))
                else self.config.data.name
            ),
            "strategy": self.config.strategy.name,
            "budget": self.config.budget.trials,
            "num_classes": (self.store.get_meta_json("model_io") or {}).get("num_classes"),
        }
        busy = [t for t in trials if t.metrics.get("latency_busy")]
        if busy:  # readings kept although other trainings ran on the host
            out["busy_readings"] = {
                "n": len(busy),
                "on_front": sum(t.metrics.get("latency_busy", 0) > 0 for t in front),
            }
        held_out = surrogate_accuracy(trials)
        if held_out:
            out["surrogate"] = held_out
        if spent := self.supernet_time():
            out["supernet_search"] = spent
        hv = normalised_hypervolume(trials, self.objectives)
        if hv is not None:
            out["hypervolume"] = hv
        out.update(self.against_true_front(front))
        if verdicts := self.reference_verdicts(trials):
            out["references"] = verdicts
        spans = [(t.started_at, t.finished_at) for t in trials if t.started_at and t.finished_at]
        if spans:
            out["elapsed_s"] = busy_seconds(spans)
        return out

    def reference_verdicts(self, trials: list[Trial]) -> list[dict[str, Any]]:
        """Per reference net with final trainings, the searched nets that dominate it
        (:func:`against_references`) and the latencies compared as timed side by side, with
        the reference and every net that dominates it."""
        return [
            {
                "reference": r.id,
                "describe": r.describe,
                "dominated_by": [t.id for t in by],
                "side_by_side": [
                    m for m, _ in self.objectives if m != "accuracy" and timed_together(m, r, *by)
                ],
            }
            for r, by in against_references(trials, self.objectives)
        ]

    def supernet_time(self) -> dict[str, Any] | None:
        """A one-shot search's theta epochs and their wall time, summed over the calls that
        resumed it (epochs from before the history kept times are counted apart), its warm-up
        of w (SPOS's whole supernet training), and the whole one-shot phase before the first
        derived net (cost tables, supernet, deriving), where the study kept those."""
        meta = self.store.get_meta_json("oneshot") or {}
        epochs = [h for s in meta.get("settings", []) for h in s.get("history", [])]
        warm = meta.get("warmup") or {}
        extra: dict[str, Any] = {}
        if warm.get("reused"):
            extra["warmup_reused"] = warm["reused"]
        elif warm.get("epochs"):  # none for DARTS and GDAS (supernet.epochs: 0)
            extra["warmup_epochs"] = int(warm["epochs"])
            extra["warmup_epochs_timed"] = int(warm.get("epochs_timed", 0))
            extra["warmup_seconds"] = float(warm["seconds"])
        if not epochs and not extra:
            return None
        if (whole := self.store.get_meta_json("oneshot_seconds")) is not None:
            extra["oneshot_seconds"] = round(float(whole), 1)
        timed = [float(h["seconds"]) for h in epochs if "seconds" in h]
        return {
            "settings": len(meta.get("settings", [])),
            "epochs": len(epochs),
            "epochs_timed": len(timed),
            "seconds": round(sum(timed), 1),
            **extra,
        }

    def against_true_front(self, front: list[Trial]) -> dict[str, Any]:
        """For tabular searches: hypervolume regret 1 - HV(found)/HV(true front) and hits.

        The reference point is the table's worst value of each objective, so the figure is
        comparable between searches on the same table; the true front is of the configured
        space under the constraints, and found nets count at their table values.
        """
        if getattr(self.config.estimator, "needs_model", True):
            return {}  # only an estimator that knows every arch (a table) has a true front
        if self._truth is None:  # computed once per Study: it reads every row of the table
            rows = table_rows(self.config) or {}
            points, worst = true_front(self.config, self.objectives, rows) or ([], [])
            self._truth = (points, worst, rows)
        points, worst, rows = self._truth
        if not points:
            return {}
        # each found net at its table value: a noisy estimator's lucky draw is no better find
        from hwnas.space import make_space

        space = make_space(self.config.space)
        found = [
            v
            for t in front
            if (v := as_minimisation(rows.get(space.key(t.arch), t.metrics), self.objectives))
        ]
        hv_true = hypervolume(points, worst)
        hv_found = hypervolume(found, worst)
        true_set = set(points)
        return {
            "hypervolume_regret": 1 - hv_found / hv_true if hv_true > 0 else None,
            "true_front_size": len(points),
            "true_front_found": sum(v in true_set for v in found),
        }

    def write_pareto_json(
        self, trials: list[Trial] | None = None, front: list[Trial] | None = None
    ) -> Path:
        """``pareto.json``: written atomically so a reader never sees half a file."""
        trials = self.trials() if trials is None else trials
        front = self.pareto(trials) if front is None else front
        payload = {
            "objectives": [{"metric": m, "direction": d} for m, d in self.objectives],
            "constraints": [str(c) for c in self.config.constraints],
            "trials_evaluated": sum(t.status not in ("running", "interrupted") for t in trials),
            **self.against_true_front(front),
            **({"references": v} if (v := self.reference_verdicts(trials)) else {}),
            "pareto": [
                {k: t.to_dict()[k] for k in ("id", "arch", "describe", "metrics", "parent_id")}
                for t in sorted(front, key=along_front(self.objectives))
            ],
        }
        # the final recipe's runs (``op: final``) are judged on their nets (their test figures
        # sum up there): a front of their own was always empty
        staged = [t for t in trials if t.info.get("op") != "final"]
        stages = sorted({t.stage for t in staged})
        if len(stages) > 1:  # each stage's own front too (NASH's final net is a stage)
            gone = superseded(trials)  # by a promotion of any stage
            payload["fronts_by_stage"] = {
                stage: [
                    t.id
                    for t in pareto_front(
                        [t for t in staged if t.stage == stage and t.id not in gone],
                        self.objectives,
                    )
                ]
                for stage in stages
            }
        path = self.dir / "pareto.json"
        tmp = path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps(json.loads(dumps(payload)), indent=2))
        os.replace(tmp, path)
        return path

    def __enter__(self) -> Study:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self.store.close()


def normalised_hypervolume(trials: list[Trial], objectives: list[tuple[str, str]]) -> float | None:
    """Hypervolume of the front in the box spanned by all feasible trials (0-1).

    Normalising by the observed worst values makes figures comparable between runs of one
    task only when the box is the same; benchmarks pass an explicit reference instead.
    """
    gone = superseded(trials)
    vecs = [
        as_minimisation(t.metrics, objectives)
        for t in trials
        if is_feasible(t) and t.id not in gone
    ]
    pts = [v for v in vecs if v is not None]
    if len(pts) < 2:
        return None
    lo = [min(p[k] for p in pts) for k in range(len(objectives))]
    hi = [max(p[k] for p in pts) for k in range(len(objectives))]
    if any(h == low for h, low in zip(hi, lo, strict=True)):
        return None
    norm = [tuple((p[k] - lo[k]) / (hi[k] - lo[k]) for k in range(len(p))) for p in pts]
    hv = hypervolume(norm, [1.0] * len(objectives))
    return hv if math.isfinite(hv) else None


def table_rows(cfg: ExperimentConfig) -> dict[str, dict[str, float]] | None:
    """Every arch a fully tabular experiment's estimator enumerates (a table), keyed by its
    table key, with what each cost source that knows them all adds; None unless the
    estimator enumerates the space."""
    from hwnas.core.registry import estimators
    from hwnas.hardware.targets import make_cost_model

    if getattr(cfg.estimator, "needs_model", True):
        return None
    rows = estimators.create(cfg.estimator).enumerate()
    if rows is None:
        return None
    for _, src in cfg.sources():
        if getattr(src, "needs_model", True):
            continue
        model = make_cost_model(src)
        try:
            known = model.enumerate() or {}
        finally:
            model.close()
        for k, metrics in rows.items():
            if k in known:
                metrics.update(known[k])
    return rows


def _findable(cfg: ExperimentConfig, rows: dict[str, dict[str, float]]) -> list[dict[str, float]]:
    """The rows a search of ``cfg`` could end on: archs of its space (a subset of ops leaves
    the rest of the table out) that meet its constraints (as far as the table knows)."""
    from hwnas.core.constraints import violated
    from hwnas.space import make_space
    from hwnas.space.base import InvalidArch

    space = make_space(cfg.space)
    out = []
    for key, metrics in rows.items():
        try:
            arch = space.from_key(key)
            if arch is not None:  # (canonical JSON names no arch to check: counted)
                space.validate(arch)
        except InvalidArch:  # a row outside the configured space
            continue
        if not violated(list(cfg.constraints), metrics):
            out.append(metrics)
    return out


def true_front(
    cfg: ExperimentConfig,
    objectives: Objectives,
    rows: dict[str, dict[str, float]] | None = None,
) -> tuple[list[tuple[float, ...]], list[float]] | None:
    """The real Pareto front of a fully tabular experiment, and the table's worst point.

    The front is of what there was to find: the archs of the configured space that meet the
    constraints (a bound leaves the table's front beyond it unreachable, and counting it made
    every strategy's regret alike). The worst point is the whole table's, so the figure keeps
    one scale between searches on the same table. ``rows``: :func:`table_rows` read already.
    None unless the estimator enumerates the space (a table).
    """
    rows = table_rows(cfg) if rows is None else rows
    if rows is None:
        return None
    vectors = [v for m in rows.values() if (v := as_minimisation(m, objectives)) is not None]
    if not vectors:
        return None
    worst = [max(v[k] for v in vectors) for k in range(len(objectives))]
    values = _findable(cfg, rows)
    front = [as_minimisation(values[i], objectives) for i in pareto_indices(values, objectives)]
    return [f for f in front if f is not None], worst


def surrogate_accuracy(trials: list[Trial]) -> dict[str, dict[str, Any]]:
    """How well a strategy's surrogate predicted the archs it picked, per objective: each
    ``info.predicted`` was made before its arch was evaluated, so these are held-out figures
    (Spearman rank correlation and mean absolute error against the measured values)."""
    from scipy.stats import spearmanr

    pairs: dict[str, list[tuple[float, float]]] = {}
    for t in trials:
        predicted = t.info.get("predicted") if t.status == "complete" else None
        for metric, value in (predicted or {}).items():
            actual = t.metrics.get(metric)
            if isinstance(actual, int | float):
                pairs.setdefault(metric, []).append((float(value), float(actual)))
    out: dict[str, dict[str, Any]] = {}
    for metric, ps in pairs.items():
        p, a = zip(*ps, strict=True)
        rho = float(spearmanr(p, a).statistic) if len(ps) >= 3 else math.nan
        out[metric] = {
            "n": len(ps),
            "spearman": None if math.isnan(rho) else round(rho, 4),  # None: constant values
            "mae": round(sum(abs(x - y) for x, y in ps) / len(ps), 6),
        }
    return out
