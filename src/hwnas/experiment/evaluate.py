"""Evaluate one candidate: build -> costs -> constraints -> estimate, never raising for it.

:class:`Evaluator` is the unit of work an executor runs. An unbuildable arch, an arch missing
from a table, a diverging loss or running out of memory become a ``failed`` outcome with its
reason, so the search goes on. A model is built only when the estimator or a cost source needs
one; a search on tables alone never touches torch and costs microseconds per trial. Costs are
known before training: a candidate that breaks a constraint is ``pruned`` and never trained,
and a stop rule (a pruner) compares the running trial only with peers of similar cost.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from hwnas.core.constraints import Constraint, violated
from hwnas.core.errors import ConfigError
from hwnas.core.fidelity import Fidelity
from hwnas.core.metrics import base_name
from hwnas.estimate.base import EstimateFailed
from hwnas.hardware.base import Candidate, select
from hwnas.hardware.host_load import others_training, training
from hwnas.space.base import Arch, InvalidArch, Space

if TYPE_CHECKING:
    import torch

    from hwnas.estimate.base import Estimator
    from hwnas.experiment.config import ExperimentConfig
    from hwnas.hardware.base import CostModel
    from hwnas.pruning.base import StopRule

log = logging.getLogger("hwnas")

__all__ = ["Evaluator", "Job", "Outcome", "Source", "build_evaluator", "violated"]


@dataclass
class Outcome:
    status: str  # complete | failed | pruned
    metrics: dict[str, Any] = field(default_factory=dict)
    curve: list[dict[str, float]] = field(default_factory=list)
    error: str | None = None
    feasible: bool = True
    prune_reason: str | None = None  # constraint | pruner
    stopped_at_epoch: int | None = None


@dataclass(frozen=True)
class Job:
    """One evaluation, as plain data (it crosses process boundaries)."""

    arch: Arch
    seed: int
    weights_path: Path | None = None
    inherit: dict[str, Any] | None = None
    fidelity: Fidelity = Fidelity()
    recipe: dict[str, Any] | None = None
    stop_rule: StopRule | None = None
    #: the prefilter's threshold: a proxy score below it is not trained (None: no filter)
    prefilter: float | None = None


@dataclass
class Source:
    """A cost model and what the run keeps of it (``provides``, ``label``)."""

    model: CostModel
    provides: list[str] | None = None
    label: str | None = None
    #: the metrics its kind gives (unlabelled names; None: any, e.g. a user's command)
    produces: set[str] | None = None

    def costs(self, cand: Candidate) -> dict[str, Any]:
        return select(self.model.costs(cand), self.provides, self.label)

    def remeasure(self, cand: Candidate) -> dict[str, Any] | None:
        fresh = self.model.remeasure(cand)
        return None if fresh is None else select(fresh, self.provides, self.label)

    def known(self, cand: Candidate, num_classes: int | None) -> dict[str, Any] | None:
        held = self.model.known(cand, num_classes)
        return None if held is None else select(held, self.provides, self.label)

    def names(self, metric: str) -> bool:
        """Whether ``metric``, as the run names it (``latency_ms@label`` for a labelled
        source), may come from this source."""
        base, _, label = metric.partition("@")
        if (label or None) != self.label:
            return False
        return self.provides is None or base in self.provides

    def gives(self, metric: str) -> bool:
        """Whether this source may give ``metric``: named by it and of its kind's."""
        base = metric.partition("@")[0]
        return self.names(metric) and (self.produces is None or base in self.produces)

    @property
    def gives_latency(self) -> bool:
        return self.names("latency_ms")


#: archs whose built costs an evaluator keeps (a few hundred bytes each)
_BUILT_KEPT = 20000


class Evaluator:
    """Turns a :class:`Job` into an :class:`Outcome`: space, input shape, cost sources,
    constraints and estimator are all it knows of the experiment."""

    def __init__(
        self,
        space: Space,
        estimator: Estimator,
        sources: list[Source],
        constraints: list[Constraint],
        input_shape: tuple[int, int, int] | None,
        num_classes: int | None,
        proxy: Estimator | None = None,
    ) -> None:
        self.space, self.estimator, self.sources = space, estimator, sources
        self.proxy = proxy  # the prefilter's zero-cost proxy (it scores built nets)
        self.constraints = constraints
        self.input_shape, self.num_classes = input_shape, num_classes
        self.needs_model = (
            estimator.needs_model or proxy is not None or any(s.model.needs_model for s in sources)
        )
        if self.needs_model and (input_shape is None or num_classes is None):
            raise ValueError("a dataset is needed to build models")
        # host load: whether a trial trains here, and whether a source times a built model
        self._trains = estimator.needs_model
        # (a device model needs the built net too, but counts its latency: never busy)
        self._times = any(s.model.needs_model and not s.model.counts for s in sources)
        self._built: dict[str, dict[str, float] | None] = {}  # built_costs by arch hash

    def build(self, arch: Arch, seed: int) -> torch.nn.Module:
        import torch

        assert self.input_shape is not None and self.num_classes is not None
        torch.manual_seed(seed)  # weight init is part of the trial's identity
        return self.space.build(arch, self.input_shape, self.num_classes)

    def candidate(self, arch: Arch, model: torch.nn.Module | None) -> Candidate:
        return Candidate(arch, self.space, self.input_shape or (0, 0, 0), model)

    def proxy_score(self, arch: Arch, seed: int) -> float:
        """The prefilter's proxy score of ``arch``'s net initialised with ``seed``."""
        assert self.proxy is not None
        cand = self.candidate(arch, self.build(arch, seed))
        return float(self.proxy.estimate(cand, Fidelity(), seed=seed).metrics[
            f"zc_{self.proxy.cfg.proxy}"
        ])  # fmt: skip

    def __call__(self, job: Job) -> Outcome:
        metrics: dict[str, Any] = {}
        model = None
        t0 = time.perf_counter()
        if self.needs_model:
            from hwnas.hardware.analytic import analytic_costs

            try:
                model = self.build(job.arch, job.seed)
                if job.inherit is not None:
                    self._inherit(model, job.arch, job.inherit)
                assert self.input_shape is not None
                metrics.update(analytic_costs(model, self.input_shape))
            except Exception as exc:  # noqa: BLE001 - any build failure is this candidate's
                return Outcome("failed", metrics, error=f"unbuildable: {type(exc).__name__}: {exc}")
        cand = self.candidate(job.arch, model)
        try:
            # only a built model is timed on this host; a table's figure is never disturbed
            busy = others_training() if self._times else 0
            self._all_costs(cand, metrics)
            if self._times:
                busy = max(busy, others_training())
            if busy and any(base_name(k) == "latency_ms" for k in metrics):
                metrics["latency_busy"] = busy  # read while that many others trained here
            if self.needs_model:
                metrics["cost_seconds"] = time.perf_counter() - t0
            broken = violated(self.constraints, metrics)
            if broken:
                return Outcome(
                    "pruned",
                    metrics,
                    error="; ".join(broken),
                    feasible=False,
                    prune_reason="constraint",
                )
            if self.proxy is not None:
                metrics.update(self.proxy.estimate(cand, job.fidelity, seed=job.seed).metrics)
                name = f"zc_{self.proxy.cfg.proxy}"
                if job.prefilter is not None and metrics[name] < job.prefilter:
                    return Outcome(
                        "pruned",
                        metrics,
                        error=f"prefilter: {name} {metrics[name]:.4g} < {job.prefilter:.4g}",
                        feasible=False,
                        prune_reason="prefilter",
                    )
            report = None
            if job.stop_rule is not None:
                job.stop_rule.start(metrics)
                report = job.stop_rule.report
            # other workers' readings on this host see a training (a table lookup is none)
            # only a warm start says where it starts (an estimator from before `start` works)
            start = {"start": Path(job.inherit["weights"])} if job.inherit is not None else {}
            with training() if self._trains else contextlib.nullcontext():
                est = self.estimator.estimate(
                    cand,
                    job.fidelity,
                    seed=job.seed,
                    report=report,
                    weights_path=job.weights_path,
                    recipe=job.recipe,
                    **start,
                )
        except EstimateFailed as exc:
            return Outcome("failed", metrics, error=str(exc))
        except KeyError as exc:
            return Outcome("failed", metrics, error=f"not in table: {exc}")
        except (KeyboardInterrupt, SystemExit):
            raise
        except Exception as exc:  # noqa: BLE001 - recorded, the search goes on
            log.debug("trial failed:\n%s", traceback.format_exc())
            return Outcome("failed", metrics, error=f"{type(exc).__name__}: {exc}")
        metrics.update(est.metrics)
        if est.stopped_at_epoch is not None:
            return Outcome(
                "pruned",
                metrics,
                est.curve,
                error=f"stopped by the pruner after epoch {est.stopped_at_epoch}",
                feasible=False,
                prune_reason="pruner",
                stopped_at_epoch=est.stopped_at_epoch,
            )
        broken = violated(self.constraints, metrics)
        return Outcome(
            "complete", metrics, est.curve, error="; ".join(broken) or None, feasible=not broken
        )

    def _all_costs(self, cand: Candidate, metrics: dict[str, Any]) -> None:
        """Every source's costs into ``metrics``, in order (a later source's figure wins).
        The counting sources go first: where their figures, or the analytic ones, already
        break a constraint that no measuring source can change, the measuring sources are
        not asked -- a board's reading can mean flashing a microcontroller, for a net whose
        SRAM already rules it out."""
        counted = {i: s.costs(cand) for i, s in enumerate(self.sources) if type(s.model).counts}
        known = dict(metrics)
        for i in sorted(counted):
            known.update(counted[i])
        measuring = any(not type(s.model).counts for s in self.sources)
        skip = measuring and bool(violated(self.constraints, self._settled(known)))
        for i, source in enumerate(self.sources):
            if i in counted:
                metrics.update(counted[i])
            elif not skip:
                self._costs(source, cand, metrics)

    def _settled(self, known: dict[str, Any]) -> dict[str, Any]:
        """Of figures known without a measurement, those no measuring source gives in their
        place: what a constraint can judge before a net is measured."""
        measuring = [s for s in self.sources if not type(s.model).counts]
        return {k: v for k, v in known.items() if not any(s.gives(k) for s in measuring)}

    def _costs(self, source: Source, cand: Candidate, metrics: dict[str, Any]) -> None:
        metrics.update(source.costs(cand))
        latency_bound = any(base_name(c.metric) == "latency_ms" for c in self.constraints)
        if (
            latency_bound
            and type(source.model).retry_on_violation
            and violated(self.constraints, metrics)
        ):
            # one slow reading must not prune a candidate: measure again, keep the faster
            # (under this source's name for it: ``latency_ms@label`` for a labelled source)
            key = "latency_ms" if source.label is None else f"latency_ms@{source.label}"
            again = source.remeasure(cand) or {}
            if key in again and again[key] < metrics.get(key, 1e300):
                metrics.update(again)

    def _inherit(self, model: torch.nn.Module, arch: Arch, inherit: dict[str, Any]) -> None:
        """Load the parent's weights into ``model``: as they are when the parent is this very
        arch and no morphism is applied (a warm start, in any space), else carried through the
        morphisms (a Morphable space)."""
        import torch

        from hwnas.space.capabilities import Morphable, supports

        space = self.space
        same = space.arch_hash(inherit["arch"]) == space.arch_hash(arch)
        if same and not inherit.get("morphs"):
            model.load_state_dict(
                torch.load(inherit["weights"], map_location="cpu", weights_only=True)
            )
            return
        if not supports(space, Morphable):
            raise ValueError(f"the {space.name} space cannot carry weights across changes")
        state = torch.load(inherit["weights"], map_location="cpu", weights_only=True)
        child, state = space.inherit(inherit["arch"], state, inherit["morphs"])  # type: ignore[attr-defined]
        if self.space.arch_hash(child) != self.space.arch_hash(arch):
            raise ValueError("inherited morphisms do not lead to this trial's arch")
        model.load_state_dict(state)

    def model_io(self) -> dict[str, Any] | None:
        """What a built net takes and gives, stored with a study so an export can put the
        data's normalisation inside the graph and name the classes: input shape, class
        count, per-channel mean and std (of pixel / 255) and class names."""
        if self.input_shape is None:
            return None
        io: dict[str, Any] = {
            "input_shape": list(self.input_shape),
            "num_classes": self.num_classes,
        }
        ds = self.estimator.task.dataset
        if ds is not None:
            io.update(mean=list(ds.mean), std=list(ds.std), class_names=list(ds.class_names))
            io["splits"] = [len(ds.train), len(ds.val), len(ds.test)]
        return io

    def check_same_data(self, stored: dict[str, Any] | None) -> None:
        """Refuse, in one line, data that differ from those a study's nets were trained on
        (a class added or renamed, images added, another input size): its trials would share
        a front with nets of other data, and an export would name the classes wrongly."""
        from hwnas.core.errors import ConfigError

        now = self.model_io()
        if not stored or now is None:
            return
        for key, what in (
            ("class_names", "classes"),
            ("num_classes", "number of classes"),
            ("input_shape", "input shape"),
            ("splits", "train / validation / test sizes"),
        ):
            if key in stored and key in now and stored[key] != now[key]:
                raise ConfigError(
                    f"data: the {what} differ from the study's (now {_short(now[key])}; the "
                    f"study's {_short(stored[key])}): its nets were trained on those; restore "
                    "the data or use another --out"
                )

    def check_buildable(self, arch: Arch) -> None:
        """Refuse, in one line, an arch that cannot be built for this task (a reference net on
        inputs too small for it) before anything is written."""
        from hwnas.core.errors import UserError

        if not self.needs_model:
            return
        try:
            self.build(arch, 0)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - any build failure, worded for the user
            raise InvalidArch(f"--arch: cannot be built: {type(exc).__name__}: {exc}") from None

    @property
    def knows_costs(self) -> bool:
        """Whether some cost source prices an arch without a built net (a table, an arch-level
        predictor, a latency lookup table's held entries), so a strategy can weigh archs it
        has not trained by their true cost."""
        return any(s.model.prices_untrained for s in self.sources)

    def known_costs(self, arch: Arch) -> dict[str, float] | None:
        """The costs of ``arch`` from the sources that price it unbuilt, measuring nothing
        (None: one of them cannot, e.g. an arch missing from a table or a block the lookup
        table has not timed yet). Cheap: a strategy may ask it for every candidate it weighs."""
        cand = self.candidate(arch, None)
        out: dict[str, float] = {}
        try:
            for i, source in enumerate(self.sources):
                if not source.model.prices_untrained:
                    continue
                held = source.known(cand, self.num_classes)
                if held is None:
                    return None
                later = [s for s in self.sources[i + 1 :] if not s.model.prices_untrained]
                out.update(  # a metric a later, timing source may overwrite is not known
                    (k, v) for k, v in held.items() if not any(s.names(k) for s in later)
                )
        except Exception:  # noqa: BLE001 - unpriceable: the strategy falls back to its model
            return None
        return out

    def built_costs(self, arch: Arch) -> dict[str, float] | None:
        """The costs ``arch``'s built net gives without a measurement: the analytic counts and
        the sources that count (a datasheet device model), less what a later, measuring
        source gives in their place -- for a strategy that draws again an arch a constraint
        on them would prune untrained. A build and a count, ~10-50 ms; kept per arch (None:
        the net cannot be built, and its trial says why)."""
        if not self.needs_model or self.input_shape is None or self.num_classes is None:
            return None
        try:
            h = self.space.arch_hash(arch)
        except Exception:  # noqa: BLE001 - not an arch of the space: its trial says why
            return None
        if h in self._built:
            return self._built[h]
        import torch

        from hwnas.hardware.analytic import analytic_costs

        out: dict[str, float] | None = None
        try:
            with torch.random.fork_rng(devices=[]):  # the run's own draws are not disturbed
                model = self.build(arch, 0)
            out = dict(analytic_costs(model, self.input_shape))
            cand = self.candidate(arch, model)
            for source in self.sources:
                if type(source.model).counts:
                    out.update(source.costs(cand))
            out = self._settled(out)
        except Exception:  # noqa: BLE001 - unbuildable: evaluated, and failed, as a trial
            out = None
        if len(self._built) >= _BUILT_KEPT:
            self._built.clear()
        self._built[h] = out
        return out

    def measure(self, arch: Arch, seed: int, only: str | None = None) -> dict[str, Any]:
        """Every cost of ``arch`` without training it: analytic counts and each source's
        reading, by the search's rules (a reading over a latency bound is taken again) --
        for a net trained outside a search (``hwnas train --arch``) and for what a one-shot
        search weighs archs by before any is trained. ``only``: read just the sources that
        may give that metric (none when the counts hold it, all when no source names it):
        one reading on a remote board, not one per source."""
        metrics: dict[str, Any] = {}
        model = None
        if self.needs_model:
            from hwnas.hardware.analytic import analytic_costs

            model = self.build(arch, seed)
            assert self.input_shape is not None
            metrics.update(analytic_costs(model, self.input_shape))
        cand = self.candidate(arch, model)
        sources = [s for s in self.sources if only is None or s.names(only)]
        if not sources and only not in metrics:  # no source names it: read them all
            sources = self.sources
        for source in sources:
            self._costs(source, cand, metrics)
        return metrics

    def test(self, arch: Arch, seed: int, weights_path: Path) -> dict[str, float]:
        """Test metrics of a final model (trained weights, or a table's test column)."""
        model = self.build(arch, seed) if self.estimator.needs_model else None
        return self.estimator.test(self.candidate(arch, model), weights_path)

    def with_estimator(self, estimator: Estimator) -> Evaluator:
        """This evaluator with another estimator (its cost sources shared: close this one)."""
        if estimator.needs_model and (self.input_shape is None or self.num_classes is None):
            raise ConfigError(f"estimator {estimator.name} trains nets: this run loads no data")
        other = copy.copy(self)
        other.estimator, other._trains = estimator, estimator.needs_model
        other.needs_model = self.needs_model or estimator.needs_model
        return other

    def close(self) -> None:
        for s in self.sources:
            s.model.close()


def final_evaluator(cfg: ExperimentConfig, evaluator: Evaluator) -> Evaluator:
    """The evaluator of the final trainings: the search's, unless ``final.estimator`` names
    another or the search's estimator trains no weights (a supernet's or a zero-cost score),
    when `train` with its defaults trains the nets stand-alone."""
    from hwnas.core.registry import estimators

    fe = cfg.final.estimator
    if fe is None and getattr(cfg.estimator, "trains", True):
        return evaluator
    est_cfg = estimators.validate(fe or {"name": "train"}, "final.estimator")
    return evaluator.with_estimator(estimators.create(est_cfg, evaluator.estimator.task))


def unused_data(cfg: ExperimentConfig, loaded: bool) -> list[str]:
    """A warning when ``data.path`` names data the run never reads (a table answers every
    accuracy and cost): the user would otherwise believe the search ran on it."""
    path = getattr(cfg.data, "path", None)
    if loaded or path is None:
        return []
    return [
        f"data.path {path} is not read: estimator {cfg.estimator.name} and target "
        f"{cfg.target.name} look every figure up, nothing is trained or built"
    ]


def build_evaluator(cfg: ExperimentConfig) -> Evaluator:
    """The evaluator of a run: each part built from its own section (a worker's kit, too)."""
    from hwnas.core.registry import estimators
    from hwnas.estimate.base import Task
    from hwnas.hardware.targets import make_cost_model
    from hwnas.space import make_space

    sources = [
        Source(make_cost_model(c), c.provides, c.label, c.produces()) for _, c in cfg.sources()
    ]
    space = make_space(cfg.space)
    needs_model = getattr(cfg.estimator, "needs_model", True) or any(
        s.model.needs_model for s in sources
    )
    # a one-shot strategy trains its supernet on the data, whatever estimates the derived nets
    needs_model = needs_model or getattr(cfg.strategy, "trains_supernet", False)
    needs_model = needs_model or cfg.prefilter.proxy is not None
    # the final stage trains with its own estimator: it needs the data too
    needs_model = needs_model or cfg.final.estimator is not None
    task = Task(device=cfg.device)
    if needs_model:
        import torch

        from hwnas.data import load_dataset

        if cfg.device == "cuda" and not torch.cuda.is_available():
            raise ConfigError("device: cuda requested but no CUDA device is available")
        data = cfg.data
        task = Task(
            load_dataset(data, cfg.seed),
            cfg.device,
            data.batch_size,  # type: ignore[attr-defined]
            data.augment,  # type: ignore[attr-defined]
            data.flip,  # type: ignore[attr-defined]
            space.fast_recipe,
        )
    estimator = estimators.create(cfg.estimator, task)
    shape = task.dataset.input_shape if task.dataset is not None else None
    classes = task.dataset.num_classes if task.dataset is not None else None
    proxy = None
    if cfg.prefilter.proxy is not None:
        from hwnas.estimate.config import ZeroCostEstimatorConfig
        from hwnas.estimate.zero_cost import ZeroCostEstimator

        pf = cfg.prefilter
        proxy = ZeroCostEstimator(
            ZeroCostEstimatorConfig(proxy=pf.proxy, batch_size=pf.batch_size), task
        )
    return Evaluator(space, estimator, sources, cfg.constraints, shape, classes, proxy)


def _short(value: Any) -> str:
    """A list for a one-line message: a long class list cut to its first names."""
    if isinstance(value, list) and len(value) > 6:
        return ", ".join(map(str, value[:6])) + f", ... ({len(value)})"
    return ", ".join(map(str, value)) if isinstance(value, list) else str(value)
