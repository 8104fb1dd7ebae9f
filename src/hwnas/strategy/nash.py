"""NASH: hill climbing with network morphisms (Elsken, Metzen & Hutter, 2017, Algorithm 1).

Start from a small net trained for ``epochs_init``. Each of ``n_steps`` steps proposes
``n_neigh - 1`` children of the current best net, each made by ``n_nm`` random morphisms that
keep its function (so a child starts where its parent stands), plus the parent itself; every
one trains ``epochs_neigh`` more epochs with one cosine cycle from ``lr_start`` to ``lr_end``
(SGDR), inheriting its parent's weights. The best by validation accuracy (among candidates
meeting the constraints; ties to the cheaper one) becomes the next parent. The last best net
trains ``epochs_final`` more epochs.

Options, each an improvement named by the seed talk:

- ``guided``: instead of taking one random morph sequence per child, draw ``guide_pool`` and
  keep the one a Gaussian process over graph features predicts best (upper confidence bound),
  in the spirit of Auto-Keras's Bayesian morphism choice;
- ``joint_scaling``: deeper and wider are replaced by one ``scale`` morphism that grows depth
  and width together with fixed ratios (EfficientNet's compound scaling).

Trials carry ``info.inherit = {trial, morphs}``: the experiment loads the parent's weights,
applies the morphisms and trains on. The strategy is sequential within a step (it needs every
neighbour's result before it can move), which is how Algorithm 1 is written.
"""

from __future__ import annotations

import math
from typing import Any, cast

from hwnas.core.fidelity import Fidelity
from hwnas.core.pareto import Objectives
from hwnas.space.base import Arch, InvalidArch, Space
from hwnas.space.capabilities import Morphable, Vectorizable, missing, supports
from hwnas.strategy.base import Proposal, Result, Strategy, StrategyDone, StrategyWaiting


class Nash(Strategy):
    name = "nash"
    requires = (Morphable,)

    def __init__(
        self,
        space: Space,
        objectives: Objectives,
        seed: int,
        *,
        n_steps: int,
        n_neigh: int,
        n_nm: int,
        epochs_init: int,
        epochs_neigh: int,
        epochs_final: int,
        lr_start: float,
        lr_end: float,
        guided: bool = False,
        guide_pool: int = 16,
        guide_kappa: float = 1.0,
        joint_scaling: bool = False,
        final_cutout: int | None = None,
    ) -> None:
        super().__init__(space, objectives, seed)
        assert isinstance(space, Morphable)
        self.morph: Morphable = space
        #: the space's vector of an arch, the guide's features (None: the space has none)
        self.vector = cast(Vectorizable, space) if supports(space, Vectorizable) else None
        if guided and self.vector is None:
            raise ValueError(missing("guided", Vectorizable, space))
        self.n_steps, self.n_neigh, self.n_nm = n_steps, n_neigh, n_nm
        self.epochs = {"init": epochs_init, "neigh": epochs_neigh, "final": epochs_final}
        self.lr = (lr_start, lr_end)
        self.final_cutout = final_cutout
        self.guided, self.guide_pool, self.guide_kappa = guided, guide_pool, guide_kappa
        self.kinds: tuple[str, ...] = ("scale", "skip") if joint_scaling else ()
        self.phase = "init"  # init -> step -> final -> done
        self.done_reason = "nash finished"
        self.step = 0
        self.issued = 0  # proposals of the current phase/step handed out
        self.told: list[dict[str, Any]] = []  # results of the current phase/step
        self.parent: dict[str, Any] | None = None  # {id, arch, epochs}
        self.history: list[tuple[list[float], float]] = []  # (features, accuracy) for guidance
        self.trajectory: list[dict[str, Any]] = []  # the parent after every step

    # ------------------------------------------------------------------ proposals
    def _train(self, kind: str) -> dict[str, Any]:
        out: dict[str, Any] = {"lr": self.lr[0], "lr_min": self.lr[1]}
        if kind == "final" and self.final_cutout is not None:
            out["cutout"] = self.final_cutout  # regularise the long training only
        return out

    def _features(self, arch: Arch, epochs: int) -> list[float]:
        assert self.vector is not None
        return [*self.vector.encode(arch), math.log2(1 + epochs)]

    def _child(self) -> tuple[Arch, list[dict[str, Any]]]:
        """A child by ``n_nm`` morphisms; at the space's limits, as many as still apply."""
        for n in range(self.n_nm, 0, -1):
            try:
                return self._child_of(n)
            except InvalidArch:
                continue
        assert self.parent is not None
        return self.parent["arch"], []  # nothing can grow any more: the parent trains on

    def _child_of(self, n_nm: int) -> tuple[Arch, list[dict[str, Any]]]:
        assert self.parent is not None
        kinds = self.kinds or None
        if not self.guided or len(self.history) < 4:
            return self.morph.morph_sequence(self.parent["arch"], n_nm, self.rng, kinds)
        pool = [
            self.morph.morph_sequence(self.parent["arch"], n_nm, self.rng, kinds)
            for _ in range(self.guide_pool)
        ]
        epochs = self.parent["epochs"] + self.epochs["neigh"]
        scores = self._ucb([self._features(a, epochs) for a, _ in pool])
        return pool[max(range(len(pool)), key=lambda i: scores[i])]

    def _ucb(self, feats: list[list[float]]) -> list[float]:
        """Upper confidence bound of accuracy from a GP fitted to every result so far."""
        import numpy as np
        from sklearn.gaussian_process import GaussianProcessRegressor
        from sklearn.gaussian_process.kernels import RBF, ConstantKernel, WhiteKernel

        x = np.array([f for f, _ in self.history])
        y = np.array([a for _, a in self.history])
        mu, sd = x.mean(0), x.std(0) + 1e-9
        kernel = ConstantKernel(1.0) * RBF(np.ones(x.shape[1])) + WhiteKernel(1e-2)
        gp = GaussianProcessRegressor(kernel, normalize_y=True, random_state=0)
        gp.fit((x - mu) / sd, y)
        m, s = gp.predict((np.array(feats) - mu) / sd, return_std=True)
        return [float(v) for v in m + self.guide_kappa * s]

    def ask(self) -> Proposal:
        if self.phase == "done":
            raise StrategyDone(self.done_reason)
        if self.phase == "init":
            if self.issued:
                raise StrategyWaiting("nash: waiting for the start net's result")
            self.issued = 1
            start = self.morph.start_arch()
            return Proposal(
                start,
                info={"train": self._train("init"), "nash": {"step": 0}},
                fidelity=Fidelity(epochs=self.epochs["init"]),
            )
        assert self.parent is not None
        pid = self.parent["id"]
        if self.phase == "final":
            if self.issued:
                raise StrategyWaiting("nash: waiting for the final net's result")
            self.issued = 1
            return Proposal(
                self.parent["arch"],
                parent_id=pid,
                info={
                    "train": self._train("final"),
                    "inherit": {"trial": pid, "morphs": []},
                    "nash": {"step": self.step, "final": True},
                },
                fidelity=Fidelity(epochs=self.epochs["final"]),
                stage="final",
            )
        if self.issued >= self.n_neigh:
            raise StrategyWaiting("nash: waiting for this step's results")
        j = self.issued
        self.issued += 1
        if j < self.n_neigh - 1:
            arch, morphs = self._child()
        else:  # the parent trains on: it stays a candidate
            arch, morphs = self.parent["arch"], []
        return Proposal(
            arch,
            parent_id=pid,
            info={
                "train": self._train("neigh"),
                "inherit": {"trial": pid, "morphs": morphs},
                "nash": {"step": self.step + 1, "neighbour": j},
            },
            fidelity=Fidelity(epochs=self.epochs["neigh"]),
        )

    # -------------------------------------------------------------------- results
    def _rank_key(self, r: dict[str, Any]) -> tuple[float, ...]:
        """Lower is better: the first objective, then the others (ties to the cheaper net)."""
        key = []
        for metric, direction in self.objectives:
            v = float(r["metrics"].get(metric, math.inf if direction == "min" else -math.inf))
            key.append(-v if direction == "max" else v)
        return tuple(key)

    def tell(self, result: Result) -> None:
        epochs = self.epochs["init"] if self.phase == "init" else 0
        if self.parent is not None:
            epochs = self.parent["epochs"] + (
                self.epochs["final"] if self.phase == "final" else self.epochs["neigh"]
            )
        entry = {
            "id": result.trial_id,
            "arch": result.arch,
            "ok": result.status == "complete" and result.feasible,
            "metrics": result.metrics,
            "epochs": epochs,
        }
        if result.status == "complete" and "accuracy" in result.metrics and self.vector is not None:
            self.history.append((self._features(result.arch, epochs), result.metrics["accuracy"]))
        if self.phase == "init":
            if not entry["ok"]:  # nothing to climb from; the next ask() ends the search
                self.phase = "done"
                self.done_reason = (
                    f"nash: the start net is {result.status}"
                    + ("" if result.feasible else " (it breaks a constraint)")
                    + "; nothing to climb from"
                )
                return
            self._move(entry)
            self.phase = "step" if self.n_steps else "final"
            return
        if self.phase == "final":
            self.trajectory.append(
                {"step": "final", "id": entry["id"], "metrics": entry["metrics"]}
            )
            self.phase = "done"
            self.done_reason = "nash finished: the final net is trained"
            return
        self.told.append(entry)
        if len(self.told) < self.n_neigh:
            return
        ok = [e for e in self.told if e["ok"]]
        if ok:
            self._move(min(ok, key=self._rank_key))
        self.told, self.issued = [], 0
        self.step += 1
        if self.step >= self.n_steps:
            self.phase = "final"

    def _move(self, entry: dict[str, Any]) -> None:
        self.parent = {"id": entry["id"], "arch": entry["arch"], "epochs": entry["epochs"]}
        self.issued = 0
        self.trajectory.append(
            {"step": self.step, "id": entry["id"], "metrics": dict(entry["metrics"])}
        )

    # ---------------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            "phase": self.phase,
            "done_reason": self.done_reason,
            "step": self.step,
            "issued": self.issued,
            "told": self.told,
            "parent": self.parent,
            "history": self.history,
            "trajectory": self.trajectory,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.phase, self.step, self.issued = state["phase"], state["step"], state["issued"]
        self.done_reason = state.get("done_reason", self.done_reason)
        self.told, self.parent = state["told"], state["parent"]
        self.history = [(list(f), float(a)) for f, a in state["history"]]
        self.trajectory = state["trajectory"]
