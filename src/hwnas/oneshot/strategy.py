"""One-shot strategies: ``fbnet`` (differentiable and hardware-aware, on a supernet space with
per-choice costs) and ``darts`` (DARTS and GDAS on a supernet space, accuracy alone).

A one-shot strategy trains nothing until the loop hands it a kit (:meth:`prepare`): then it
prices every choice (fbnet), trains the supernet (or reuses one), learns theta per setting,
derives archs, and from then on only proposes them -- ``stage="derived"``, each trained
stand-alone by the run's estimator, measured on the real target, re-timed and on the front
like any trial. Its state (the derived archs and how far the loop got) is JSON in the store, so a resumed search
neither retrains the supernet nor proposes a net twice.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import replace
from typing import Any, ClassVar

from hwnas.core.errors import UserError
from hwnas.core.metrics import base_name
from hwnas.core.pareto import Objectives
from hwnas.oneshot.costs import NO_COST, ChoiceCosts, check_metric
from hwnas.oneshot.derive import DISTURBED
from hwnas.oneshot.losses import Setting, settings_of
from hwnas.space.base import Space
from hwnas.space.capabilities import PerChoiceCosts, Supernet
from hwnas.strategy.base import Proposal, Strategy, StrategyDone

log = logging.getLogger("hwnas")


class OneShotSearch(Strategy):
    """What every one-shot strategy shares: supernet phase, derivation, proposing, state."""

    name = "oneshot"
    requires: ClassVar[tuple[type, ...]] = (Supernet,)
    one_shot = True
    cfg: Any

    def __init__(self, space: Space, objectives: Objectives, seed: int) -> None:
        super().__init__(space, objectives, seed)
        self.derived: list[dict[str, Any]] | None = None
        self.next = 0
        self._warnings: list[str] = []

    # hooks -------------------------------------------------------------------
    def _settings(self, kit: Any) -> list[Setting]:
        raise NotImplementedError

    def _costs(self, kit: Any) -> ChoiceCosts:
        raise NotImplementedError

    def _supernet(self, kit: Any) -> Any:
        """The kit a strategy trains with (darts sets the mixture of its variant)."""
        return kit

    def _target_tolerance(self) -> float:
        return 0.1

    def _measured_fixes(self) -> int:
        """Readings of a derived net against its cost target (0: the table is trusted)."""
        return 0

    def _load_factor(self) -> float:
        """How far over the table a reading is taken as load (see ``derive.DISTURBED``)."""
        return DISTURBED

    def _unweighed(self) -> list[str]:
        """Objectives theta does not learn towards (darts: all but accuracy), said at start."""
        return []

    @staticmethod
    def _measurer(kit: Any, costs: ChoiceCosts) -> Callable[[list[int]], float | None] | None:
        """A derived net's latency as the run's cost sources give it; None for a counted
        cost (MACs, params: the per-choice table is exact) or a metric the lookup table
        itself gives (`target: lut`: its figure is the table's) -- nothing to measure."""
        if base_name(costs.metric) != "latency_ms" or costs.metric in kit.tabled:
            return None

        def measure(picks: list[int]) -> float | None:
            value = kit.price(kit.space.from_choices(picks), costs.metric).get(costs.metric)
            return float(value) if isinstance(value, int | float) else None

        return measure

    def check(self, kit: Any) -> None:
        from hwnas.oneshot.search import check_weights

        self._settings(kit)
        try:
            check_weights(kit)
        except (FileNotFoundError, ValueError) as exc:
            raise UserError(str(exc)) from None

    # the phase ---------------------------------------------------------------
    def prepare(self, kit: Any) -> None:
        """Price the choices, train the supernet, learn theta per setting, derive."""
        if self.derived is not None:
            return  # resumed after the one-shot phase: its nets are in the state
        from hwnas.oneshot.derive import derive
        from hwnas.oneshot.search import SupernetDiverged, SupernetSearch

        settings = self._settings(kit)
        costs = self._costs(kit)
        if costs.metric != NO_COST:
            log.info(
                "%s: %s per choice: cheapest net %.4g, dearest %.4g, uniform %.4g; settings %s",
                self.name,
                costs.metric,
                costs.cheapest(),
                costs.dearest(),
                costs.uniform(),
                ", ".join(s.label() for s in settings),
            )
        # before hours of supernet training
        self._warnings = _unreachable(settings, costs) + self._unweighed()
        for w in self._warnings:
            log.warning("%s", w)
            if kit.warn is not None:
                kit.warn(w)
        try:
            trainer = SupernetSearch(self._supernet(kit), costs)
            trainer.warm_up(kit.report)
            results = [trainer.search(k, s, kit.report) for k, s in enumerate(settings)]
        except (FileNotFoundError, ValueError) as exc:
            raise UserError(str(exc)) from None
        except SupernetDiverged as exc:
            raise UserError(f"{exc} (lower supernet.w_lr or supernet.theta_lr)") from None
        derived, seen = [], set()
        tol = self._target_tolerance()
        for k, res in enumerate(results):
            target = res.setting.target
            if target is not None and res.setting.bound:  # a constraint's bound: aim below it,
                target *= 1.0 - tol  # so the fix-up's band ends at the bound, not past it
            for rank, (picks, info) in enumerate(
                derive(
                    res.probs,
                    costs,
                    self.cfg.per_setting,
                    target,
                    tol,
                    self._measurer(kit, costs),
                    self._measured_fixes(),
                    bound=bool(res.setting.bound),
                    load_factor=self._load_factor(),
                )
            ):
                arch = kit.space.from_choices(picks)
                h = kit.space.arch_hash(arch)
                if h in seen:
                    continue
                seen.add(h)
                if target is not None:
                    _log_fix_up(self.name, res.setting.label(), rank, costs.metric, info)
                    missed = _missed(self.name, res.setting, rank, costs.metric, info, tol)
                    if missed is not None:  # said on the console, not only in hwnas.log
                        log.warning("%s", missed)
                        self._warnings.append(missed)
                        if kit.warn is not None:
                            kit.warn(missed)
                info = {"op": "derive", "setting": k, **res.setting.to_json(), "rank": rank, **info}
                if costs.metric != NO_COST:
                    info["cost_metric"] = costs.metric
                else:
                    info.pop("predicted_cost", None)
                derived.append({"arch": arch, "info": info})
        kit.save(
            "oneshot",
            {
                "strategy": self.name,
                "cost_metric": costs.metric,
                "costs": costs.to_json(),
                "choices": kit.space.choices(),
                "settings": [
                    {**r.setting.to_json(), "label": r.setting.label(), "history": r.history}
                    for r in results
                ],
                "warmup": trainer.warmup_cost(),
            },
        )
        self.derived = derived
        log.info(
            "%s: %d distinct nets derived from %d settings", self.name, len(derived), len(settings)
        )

    def warnings(self) -> list[str]:
        return list(self._warnings)

    # ask/tell ----------------------------------------------------------------
    def ask(self) -> Proposal:
        if self.derived is None:
            raise RuntimeError(f"{self.name}: ask before prepare (the loop trains the supernet)")
        if self.next >= len(self.derived):
            raise StrategyDone(f"{self.name}: all {len(self.derived)} derived nets proposed")
        d = self.derived[self.next]
        self.next += 1
        return Proposal(d["arch"], info=dict(d["info"]), stage="derived")

    def state(self) -> dict[str, Any]:
        return {**super().state(), "derived": self.derived, "next": self.next}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.derived = state.get("derived")
        self.next = int(state.get("next", 0))


def _log_fix_up(name: str, label: str, rank: int, metric: str, info: dict[str, Any]) -> None:
    """What the fix-up did to a net asked for at a cost target, in ``hwnas.log``: a derived
    net that misses its target once trained is read there without opening the study."""
    fix = info.get("fixed_up") or {}
    readings = ", ".join(f"{v:.4g}" for v in fix.get("measured", [])) or "none"
    log.info(
        "%s: %s net %d: %s %.4g by the table (%.4g before %d fix-up change%s), measured %s",
        name,
        label,
        rank,
        metric,
        info["predicted_cost"],
        fix.get("cost_before", info["predicted_cost"]),
        fix.get("changes", 0),
        "" if fix.get("changes", 0) == 1 else "s",
        readings,
    )
    if fix.get("disturbed"):
        log.warning(
            "%s: %s net %d read %s ms, over %gx the table's %.4g: taken as load on this host, "
            "the table's net kept (its trial is timed again before the front is reported)",
            name,
            label,
            rank,
            " and ".join(f"{v:.4g}" for v in fix["measured"][-2:]),
            fix["load_factor"],  # stored with the flag by derive
            info["predicted_cost"],
        )


def _missed(
    name: str, setting: Setting, rank: int, metric: str, info: dict[str, Any], tol: float
) -> str | None:
    """A derived net whose cost, as last read (the target's reading after the fix-up, else
    the table's), misses its target beyond the tolerance (a bound: lies above it)."""
    target = setting.target
    fix = info.get("fixed_up") or {}
    readings = [] if fix.get("disturbed") else list(fix.get("measured", []))
    if target is None or not target:
        return None
    cost = readings[-1] if readings else info["predicted_cost"]
    off = cost / target - 1.0
    if (setting.bound and off <= 0.0) or (not setting.bound and abs(off) <= tol):
        return None
    how = "measured" if readings else "by the table"
    return (
        f"{name}: {setting.label()} net {rank}: {metric} {cost:.4g} ({how}) misses its "
        f"{'bound' if setting.bound else 'target'} {target:.4g} by {off:+.0%} (tolerance "
        f"{tol:.0%}); the net is kept"
    )


def _unreachable(settings: list[Setting], costs: ChoiceCosts) -> list[str]:
    """A cost target outside the space's range cannot be met: said before the nets train."""
    if costs.metric == NO_COST:
        return []
    low, high = costs.cheapest(), costs.dearest()
    out = []
    for s in settings:  # a bound above the dearest net is met by every net
        if s.target is not None and (s.target < low or (s.target > high and not s.bound)):
            end = "below the cheapest" if s.target < low else "above the dearest"
            out.append(
                f"cost target {s.target:g} is {end} net of the space ({costs.metric} "
                f"{low:.4g} to {high:.4g}): its derived nets will miss it"
            )
    return out


class FbnetSearch(OneShotSearch):
    """FBNet / SqueezeNAS: theta against a resource loss from per-choice costs."""

    name = "fbnet"
    requires: ClassVar[tuple[type, ...]] = (Supernet, PerChoiceCosts)

    def __init__(self, space: Space, objectives: Objectives, seed: int, **cfg: Any) -> None:
        super().__init__(space, objectives, seed)
        from hwnas.strategy.config import FbnetStrategyConfig

        self.cfg = FbnetStrategyConfig(name="fbnet", **cfg)
        check_metric(self.cfg.cost_metric)

    def _default_target(self, kit: Any) -> float | None:
        """The bound of a ``<=``/``<`` constraint on the cost metric, if any."""
        bounds = [
            c.value
            for c in kit.constraints
            if c.op in ("<=", "<") and c.metric == self.cfg.cost_metric
        ]
        return min(bounds) if bounds else None

    def _lut(self, kit: Any) -> Any:
        """The table settings a latency metric is timed with; None for analytic metrics and
        for a latency a device model estimates."""
        metric = self.cfg.cost_metric
        if base_name(metric) != "latency_ms" or metric in kit.devices:
            return None
        lut = kit.luts.get(metric)
        if lut is None:
            timed = [*kit.luts, *(m for m in kit.devices if base_name(m) == "latency_ms")]
            known = ", ".join(sorted(timed)) or "none"
            raise UserError(
                f"strategy.cost_metric: {metric} has no runtime to time blocks on "
                f"(latency metrics with one: {known})"
            )
        return lut

    def _settings(self, kit: Any) -> list[Setting]:
        try:
            return settings_of(self.cfg, self._default_target(kit))
        except ValueError as exc:
            raise UserError(f"strategy: fbnet: {exc}") from None

    def _costs(self, kit: Any) -> ChoiceCosts:
        from hwnas.oneshot.costs import choice_costs

        return choice_costs(
            kit.space,
            self.cfg.cost_metric,
            kit.input_shape,
            kit.num_classes,
            self._lut(kit),
            progress=kit.progress,
            device=self._device(kit),
        )

    def _device(self, kit: Any) -> Any:
        """The device model that prices the cost metric's blocks, if one does; energy has no
        other source."""
        metric = self.cfg.cost_metric
        device = kit.devices.get(metric)
        if device is None and base_name(metric) == "energy_mj":
            known = ", ".join(m for m in sorted(kit.devices) if m.startswith("energy")) or "none"
            raise UserError(
                f"strategy.cost_metric: {metric} needs a device model to price blocks, e.g. "
                "costs: [{name: device, spec: cortex-m7, label: mcu}] and cost_metric "
                f"energy_mj@mcu (energy metrics with one: {known})"
            )
        return device

    def _target_tolerance(self) -> float:
        return float(self.cfg.tolerance)

    def _unweighed(self) -> list[str]:
        weighed = self.cfg.cost_metric
        rest = [m for m, _ in self.objectives if m not in ("accuracy", weighed)]
        if not rest:
            return []
        return [
            f"strategy fbnet weighs {weighed}: {', '.join(rest)} "
            f"{'is' if len(rest) == 1 else 'are'} measured on the derived nets, not searched "
            f"for (strategy.cost_metric names the cost theta learns towards)"
        ]

    def _measured_fixes(self) -> int:
        return int(self.cfg.measured_fixes)

    def _load_factor(self) -> float:
        return float(self.cfg.load_factor)

    def check(self, kit: Any) -> None:
        self._lut(kit)
        self._device(kit)
        super().check(kit)


#: beta-DARTS's regulariser weight per search (``supernet.beta_decay``): in epoch e of E it is
#: beta_decay * e / E, its NAS-Bench-201 setting's 0.5 per epoch over 50 epochs
BETA_DECAY = 25.0


class DartsSearch(OneShotSearch):
    """DARTS (Liu et al. 2019, first order: mixed ops weighted by softmax(theta), theta on
    its own share of the training data), GDAS (Dong & Yang 2019: one Gumbel-sampled op per
    edge, straight-through) or beta-DARTS (Ye et al. 2022: DARTS whose theta loss adds a
    rising weight times logsumexp(theta) per edge). Accuracy alone: no resource loss. DARTS
    is known to collapse onto parameter-free ops (skip, pooling) on NAS-Bench-201; GDAS's
    sampling avoids it (published: 54.3 % against 93.6 % on CIFAR-10), and so does
    beta-DARTS's regulariser, which keeps theta's logits from drifting apart (published:
    94.36 % after 50 epochs, the optimum being 94.37 %)."""

    name = "darts"

    def __init__(self, space: Space, objectives: Objectives, seed: int, **cfg: Any) -> None:
        super().__init__(space, objectives, seed)
        from hwnas.strategy.config import DartsStrategyConfig

        self.cfg = DartsStrategyConfig(name="darts", **cfg)

    def _settings(self, kit: Any) -> list[Setting]:
        return [Setting("additive", 0.0)]

    def _unweighed(self) -> list[str]:
        costs = [m for m, _ in self.objectives if m != "accuracy"]
        if not costs:
            return []
        return [
            f"strategy darts searches for accuracy alone: {', '.join(costs)} "
            f"{'is' if len(costs) == 1 else 'are'} measured on the derived net, not searched "
            "for (strategy fbnet weighs a cost)"
        ]

    def _costs(self, kit: Any) -> ChoiceCosts:
        return ChoiceCosts(NO_COST, 0.0, [[0.0] * len(c) for c in kit.space.choices()])

    def _supernet(self, kit: Any) -> Any:
        update: dict[str, Any] = {"mixture": "hard" if self.cfg.variant == "gdas" else "softmax"}
        if kit.cfg.beta_decay is None:
            update["beta_decay"] = BETA_DECAY if self.cfg.variant == "beta" else 0.0
        return replace(kit, cfg=kit.cfg.model_copy(update=update))
