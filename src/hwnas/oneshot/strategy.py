"""``strategy: fbnet``: differentiable hardware-aware search on a supernet space.

The strategy trains nothing until the loop hands it a kit (:meth:`prepare`): then it prices
every choice, trains the supernet (or reuses one), learns theta per setting, derives archs,
and from then on only proposes them -- ``stage="derived"``, each trained stand-alone by the
run's estimator, measured on the real target, re-timed and on the front like any trial. Its
state (the derived archs and how far the loop got) is JSON in the store, so a resumed search
neither retrains the supernet nor proposes a net twice.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

from hwnas.core.errors import UserError
from hwnas.core.pareto import Objectives
from hwnas.oneshot.costs import base_metric, check_metric
from hwnas.space.base import Space
from hwnas.space.capabilities import Supernet
from hwnas.strategy.base import Proposal, Strategy, StrategyDone

log = logging.getLogger("hwnas")


class FbnetSearch(Strategy):
    name = "fbnet"
    requires: ClassVar[tuple[type, ...]] = (Supernet,)
    one_shot = True

    def __init__(self, space: Space, objectives: Objectives, seed: int, **cfg: Any) -> None:
        super().__init__(space, objectives, seed)
        from hwnas.strategy.config import FbnetStrategyConfig

        self.cfg = FbnetStrategyConfig(name="fbnet", **cfg)
        check_metric(self.cfg.cost_metric)
        self.derived: list[dict[str, Any]] | None = None
        self.next = 0

    # ----------------------------------------------------------- one-shot phase
    def _default_target(self, kit: Any) -> float | None:
        """The bound of a ``<=``/``<`` constraint on the cost metric, if any."""
        bounds = [
            c.value
            for c in kit.constraints
            if c.op in ("<=", "<") and c.metric == self.cfg.cost_metric
        ]
        return min(bounds) if bounds else None

    def _lut(self, kit: Any) -> Any:
        """The table settings a latency metric is timed with; None for analytic metrics."""
        metric = self.cfg.cost_metric
        if base_metric(metric) != "latency_ms":
            return None
        lut = kit.luts.get(metric)
        if lut is None:
            known = ", ".join(sorted(kit.luts)) or "none"
            raise UserError(
                f"strategy.cost_metric: {metric} has no runtime to time blocks on "
                f"(latency metrics with one: {known})"
            )
        return lut

    def _settings(self, kit: Any) -> list[Any]:
        from hwnas.oneshot.losses import settings_of

        try:
            return settings_of(self.cfg, self._default_target(kit))
        except ValueError as exc:
            raise UserError(f"strategy: fbnet: {exc}") from None

    def check(self, kit: Any) -> None:
        from hwnas.oneshot.search import check_weights

        self._lut(kit)
        self._settings(kit)
        try:
            check_weights(kit)
        except (FileNotFoundError, ValueError) as exc:
            raise UserError(str(exc)) from None

    def prepare(self, kit: Any) -> None:
        """Price the choices, train the supernet, learn theta per setting, derive."""
        if self.derived is not None:
            return  # resumed after the one-shot phase: its nets are in the state
        from hwnas.oneshot.costs import choice_costs
        from hwnas.oneshot.derive import derive
        from hwnas.oneshot.search import SupernetDiverged, SupernetSearch

        metric = self.cfg.cost_metric
        lut, settings = self._lut(kit), self._settings(kit)
        costs = choice_costs(
            kit.space, metric, kit.input_shape, kit.num_classes, lut, progress=kit.progress
        )
        log.info(
            "fbnet: %s per choice: cheapest net %.4g, dearest %.4g, uniform %.4g; settings %s",
            metric,
            costs.cheapest(),
            costs.dearest(),
            costs.uniform(),
            ", ".join(s.label() for s in settings),
        )
        try:
            trainer = SupernetSearch(kit, costs)
            trainer.warm_up()
            results = [trainer.search(k, s) for k, s in enumerate(settings)]
        except (FileNotFoundError, ValueError) as exc:
            raise UserError(str(exc)) from None
        except SupernetDiverged as exc:
            raise UserError(f"{exc} (lower supernet.w_lr or supernet.theta_lr)") from None
        derived, seen = [], set()
        for k, res in enumerate(results):
            target = res.setting.target
            for rank, (picks, info) in enumerate(
                derive(res.probs, costs, self.cfg.per_setting, target, self.cfg.tolerance)
            ):
                arch = kit.space.from_choices(picks)  # type: ignore[attr-defined]
                h = kit.space.arch_hash(arch)
                if h in seen:
                    continue
                seen.add(h)
                derived.append(
                    {
                        "arch": arch,
                        "info": {
                            "op": "derive",
                            "setting": k,
                            **res.setting.to_json(),
                            "rank": rank,
                            "cost_metric": metric,
                            **info,
                        },
                    }
                )
        kit.save(
            "oneshot",
            {
                "strategy": self.name,
                "cost_metric": metric,
                "costs": costs.to_json(),
                "choices": kit.space.choices(),  # type: ignore[attr-defined]
                "settings": [
                    {**r.setting.to_json(), "label": r.setting.label(), "history": r.history}
                    for r in results
                ],
            },
        )
        self.derived = derived
        log.info("fbnet: %d distinct nets derived from %d settings", len(derived), len(settings))

    # -------------------------------------------------------------- ask/tell
    def ask(self) -> Proposal:
        if self.derived is None:
            raise RuntimeError("fbnet: ask before prepare (the loop trains the supernet first)")
        if self.next >= len(self.derived):
            raise StrategyDone(f"fbnet: all {len(self.derived)} derived nets proposed")
        d = self.derived[self.next]
        self.next += 1
        return Proposal(d["arch"], info=dict(d["info"]), stage="derived")

    def state(self) -> dict[str, Any]:
        return {**super().state(), "derived": self.derived, "next": self.next}

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.derived = state.get("derived")
        self.next = int(state.get("next", 0))
