"""``strategy: spos``: single-path one-shot search (Guo et al. 2020).

The supernet trains once along uniformly drawn single paths (the ``supernet`` section's
warm-up with one sampled op per position), so every path's weights are usable on their own.
Then an ordinary strategy (``strategy.search``: evolution by default) explores the space with
each arch scored by its inherited weights after BatchNorm recalibration and priced by the
run's cost sources -- seconds per arch, no training. The nets spread along that search's
front are the derived nets, trained stand-alone like any trial.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import replace
from pathlib import Path
from typing import Any

from hwnas.core.constraints import violated
from hwnas.core.errors import UserError
from hwnas.core.pareto import Objectives, pareto_indices
from hwnas.oneshot.costs import NO_COST, ChoiceCosts
from hwnas.oneshot.losses import Setting
from hwnas.oneshot.paths import PathSpace
from hwnas.oneshot.strategy import OneShotSearch
from hwnas.space.base import Space
from hwnas.strategy.base import Result, Strategy, StrategyDone, StrategyWaiting

log = logging.getLogger("hwnas")

#: asks in a row for archs already scored before the inner search counts as exhausted
MAX_REPEATS = 200
#: scores kept on disk every this many new archs (and when the search stops for any reason)
FLUSH_EVERY = 25
#: the scores of an unfinished inner search, in the supernet's folder
SCORED = "spos_scored.json"


def _keep(path: Path, stamp: str, scored: dict[str, dict[str, Any]]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"stamp": stamp, "scores": scored}))
    os.replace(tmp, path)


def _kept(path: Path, stamp: str) -> dict[str, dict[str, Any]]:
    """Scores an earlier call kept for this very search (same section, seed and supernet
    weights, by ``stamp``); none for another (a study started again with --force)."""
    try:
        saved = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    ok = isinstance(saved, dict) and saved.get("stamp") == stamp
    return dict(saved.get("scores", {})) if ok else {}


class SposSearch(OneShotSearch):
    """Uniform single-path supernet, then a search on inherited weights, then the front."""

    name = "spos"

    def __init__(self, space: Space, objectives: Objectives, seed: int, **cfg: Any) -> None:
        super().__init__(space, objectives, seed)
        from hwnas.core.registry import strategies
        from hwnas.strategy import make_strategy
        from hwnas.strategy.config import SposStrategyConfig

        self.cfg = SposStrategyConfig(name="spos", **cfg)
        inner_cfg = strategies.validate(self.cfg.search, where="strategy.search")
        if getattr(inner_cfg, "trains_supernet", False):
            raise ValueError(
                f"strategy.search: {inner_cfg.name} is one-shot itself; name one that asks "
                "for archs (evolution, random, optuna...)"
            )
        # the inner search proposes only paths of the supernet (a sub-space for some spaces)
        self.inner: Strategy = make_strategy(inner_cfg, PathSpace(space), objectives, seed)

    def _settings(self, kit: Any) -> list[Setting]:
        return [Setting("additive", 0.0)]

    def prepare(self, kit: Any) -> None:
        """Train the single-path supernet (or resume or reuse it), search it, derive."""
        if self.derived is not None:
            return  # resumed after the one-shot phase: its nets are in the state
        from hwnas.oneshot.inherit import InheritedScorer
        from hwnas.oneshot.search import SupernetDiverged, SupernetSearch

        # one op per position, drawn uniformly (theta stays at zero); no theta to train, so
        # w trains on (all but one image of) the training split; the ops keep their affine
        # BatchNorm, since the inherited weights go into stand-alone nets
        update = {"mixture": "hard", "theta_fraction": 1e-9, "op_batchnorm": "affine"}
        single = replace(kit, cfg=kit.cfg.model_copy(update=update))
        none = ChoiceCosts(NO_COST, 0.0, [[0.0] * len(c) for c in kit.space.choices()])
        try:
            trainer = SupernetSearch(single, none)
            trainer.warm_up(kit.report)
        except (FileNotFoundError, ValueError) as exc:
            raise UserError(str(exc)) from None
        except SupernetDiverged as exc:
            raise UserError(f"{exc} (lower supernet.w_lr)") from None
        c = self.cfg
        scorer = InheritedScorer(
            trainer.net,
            trainer.data,
            trainer.dev,
            batch_size=c.batch_size,
            bn_batches=c.bn_batches,
            eval_images=c.eval_images,
            seed=kit.seed + 7,
            precision=trainer.trained_precision,  # scored in the arithmetic it was trained in
            finetune_steps=c.finetune_steps,
            finetune_lr=c.finetune_lr,
        )
        evaluations = self._search(kit, scorer)
        chosen = self._front(evaluations)
        self.derived = [
            {
                "arch": e["arch"],
                "info": {
                    "op": "derive",
                    "rank": rank,
                    "inherited_accuracy": e["metrics"]["accuracy"],
                    "evaluation": e["n"],
                },
            }
            for rank, e in enumerate(chosen)
        ]
        kit.save(
            "oneshot",
            {
                "strategy": self.name,
                "search": self.inner.name,
                "choices": kit.space.choices(),
                "evaluations": evaluations,
                "derived": [e["n"] for e in chosen],
                "warmup": trainer.warmup_cost(),
            },
        )
        log.info(
            "spos: %d archs scored with inherited weights, %d on their front, %d derived",
            len(evaluations),
            len(pareto_indices([e["metrics"] for e in evaluations], self.objectives)),
            len(self.derived),
        )

    def _search(self, kit: Any, scorer: Any) -> list[dict[str, Any]]:
        """Run the inner strategy for ``evaluations`` distinct archs (fewer when it is done
        or keeps asking for archs it has seen). The scores are kept on disk as they come:
        an interrupted search, resumed, asks the same archs (the strategy is seeded, the
        scores deterministic) and is answered from them instead of scoring again."""
        space, seen = kit.space, dict[str, dict[str, Any]]()
        path = Path(kit.directory) / SCORED
        weights = Path(kit.cfg.weights).expanduser() if kit.cfg.weights else None
        weights = weights or Path(kit.directory) / "warmup.pt"
        st = weights.stat() if weights.exists() else None
        stamp = json.dumps(
            [self.cfg.model_dump(mode="json"), kit.seed, st and [st.st_size, st.st_mtime_ns]]
        )
        kept = _kept(path, stamp)
        if kept:
            log.info("spos: %d archs scored before, answered from %s", len(kept), path)
        out: list[dict[str, Any]] = []
        repeats = asks = fresh = 0
        try:
            while len(out) < self.cfg.evaluations and repeats < MAX_REPEATS:
                try:
                    p = self.inner.ask()
                except (StrategyDone, StrategyWaiting):
                    break
                h = space.arch_hash(p.arch)
                e = seen.get(h)
                if e is None:
                    repeats = 0
                    metrics = kept.get(h)
                    if metrics is None:
                        metrics = {**kit.price(p.arch), **scorer.score(space.to_choices(p.arch))}
                        kept[h], fresh = metrics, fresh + 1
                        if fresh % FLUSH_EVERY == 0:  # a kill -9 loses at most this many
                            _keep(path, stamp, kept)
                    feasible = not violated(kit.constraints, metrics)
                    e = {"n": len(out), "arch": p.arch, "metrics": metrics, "feasible": feasible}
                    seen[h] = e
                    out.append(e)
                    if kit.report:
                        kit.report("spos: scoring archs", len(out), self.cfg.evaluations)
                    if len(out) % 50 == 0:
                        best = max(x["metrics"]["accuracy"] for x in out)
                        log.info(
                            "spos: %d archs scored, best inherited accuracy %.4f", len(out), best
                        )
                else:
                    repeats += 1
                self.inner.tell(Result(asks, p.arch, "complete", e["metrics"], e["feasible"]))
                asks += 1
        finally:  # Ctrl-C or a failure: what was scored is kept for the resumed search
            if fresh:
                _keep(path, stamp, kept)
        return out

    def _front(self, evaluations: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Up to ``derive`` feasible members of the inherited-weight front, evenly spread along
        the first cost objective, the most accurate first (accuracy alone: the most accurate)."""
        ok = [e for e in evaluations if e["feasible"]]
        k = self.cfg.derive
        costs = [m for m, _ in self.objectives if m != "accuracy"]
        if not costs:  # accuracy alone: the k best
            return sorted(ok, key=lambda e: (-e["metrics"]["accuracy"], e["n"]))[:k]
        key = costs[0]
        front = [ok[i] for i in pareto_indices([e["metrics"] for e in ok], self.objectives)]
        front.sort(key=lambda e: (-e["metrics"]["accuracy"], e["metrics"].get(key, 0.0)))
        if len(front) <= k or k == 1:
            return front[:k]
        by_cost = sorted(front, key=lambda e: (e["metrics"].get(key, 0.0), e["n"]))
        idx = sorted({round(i * (len(by_cost) - 1) / (k - 1)) for i in range(k)}, reverse=True)
        return [by_cost[i] for i in idx]  # the dearest (most accurate) end first
