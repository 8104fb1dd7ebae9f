"""Bayesian optimisation over architectures: a Gaussian process on the space's genes, expected
improvement maximised over mutations of the best archs; for two objectives expected
hypervolume improvement, for more ParEGO.

Why these choices (from the literature, for small categorical spaces such as NAS-Bench-201):
- *Kernel on genes.* ``k(a, b) = s2 * exp(-hamming(a, b) / l)`` compares archs gene by gene;
  it is positive definite on categorical values, needs no embedding, and its two
  hyperparameters (length scale ``l``, noise) are chosen by marginal likelihood over a small
  grid (a few Cholesky factorisations, no gradient steps to diverge); ``s2`` has a closed form.
- *Local acquisition* (BANANAS, White et al. 2021): expected improvement is maximised over
  the incumbent's whole neighbourhood, mutations (1-2 genes) of the next best archs and
  uniform samples. NAS landscapes are
  locally smooth (local search is near-optimal on NB201), so EI over neighbours of the
  incumbents finds what a global random pool of candidates misses; the uniform share keeps
  the search global.
- *Results as normal scores* (a Gaussian copula, Salinas et al. 2020; HEBO's output
  warping, Cowen-Rivers et al. 2022, has the same aim): the GP models each result's rank
  mapped to a standard normal quantile, not the raw value. NAS results are skewed (a few
  archs that do not learn at 10 % beside a dense top within a point); standardised raw values
  spend the model on the tail, ranks spread the top where the search decides. On NB201 (one
  objective, 100 archs) it raised the seeds that find the optimum from 85 to 94 of 100; the
  benchmark's 100 paired seeds: 91, mean regret 0.040 (evolution 59, 0.104).
- *Two objectives: expected hypervolume improvement* (EHVI, Emmerich et al. 2006; the
  acquisition qNEHVI/BoTorch and most multi-objective BO use): one GP per objective, each on
  its normal scores, and the improvement of the front measured in that normal-score space
  (reference point: the worst score seen per objective), averaged over Monte Carlo draws of
  the two predictions. Measuring the front in score space keeps both ends of it in view: in
  raw units one end dominates (on NB201 x Pixel 3 most of the front's area hangs on the
  fastest net that learns at all; EHVI in raw units left the accurate end short, regret
  0.0056 at 300 archs against 0.0022 in scores, 4 seeds of a prototype). The candidates are
  the whole neighbourhood of every front point and mutations of them. On NB201 (accuracy x
  Pixel 3 latency, 30 seeds) the hypervolume regret at 300 archs is 0.0027 against
  ParEGO's 0.0040 (``benchmarks/results``).
- *End steps* (``ends``, two objectives): a share of the asks (0.2) takes the best expected
  improvement of one objective alone, either at random, over the same candidates. EHVI values
  an arch by the area it adds, and at the front's ends (the fastest nets that still learn, the
  most accurate) a step adds little area per arch, so EHVI leaves them short: on NB201 x
  Pixel 3 a third of its regret at 100 archs lay below 2 ms and a third above 20 ms
  (``benchmarks/nb201_regret_bands.py``). With the steps, 30 paired seeds: 0.0104 -> 0.0072 at
  100 archs (24 of 30 seeds better), no worse on Raspberry Pi 4, Eyeriss or FPGA latency.
- *Costs known before training* (``known_costs``): where a source prices an arch without
  training it (a table of the target, an arch-level predictor, the entries a latency lookup
  table already holds: nothing is measured for it), EHVI takes each
  candidate's cost as known (its normal score among the told archs, no spread) and models
  only accuracy; end steps then push the other end, since a known cost's end is a lookup,
  not a search. On NB201 (30 paired seeds) the true-front points found at 300 archs rose
  from 8.0 to 11.9 of 50 (Pixel 3; Raspberry Pi 4 8.2 to 11.7) and the regret at 300 fell
  0.0022 -> 0.0018 on Pixel 3 (level on Raspberry Pi 4); at 100 archs it is level within
  noise (0.0083 vs 0.0072 +- 0.0008): the accuracy model, not the latency one, limits it.
  A constraint on a known cost rules candidates out before they are proposed (they would be
  pruned untrained, a trial spent on nothing).
- *Degenerate archs skipped*: an arch the space calls degenerate (a cell whose output no path
  reaches: it predicts one class) is never proposed. Known latency makes the fastest archs,
  which are mostly such cells, look cheap to try: a quarter of the asks went to them on
  NB201 x Pixel 3 (a tenth without known costs), though they are 2 % of the space. Skipping
  them, 30 paired seeds: regret 0.0056 / 0.0013 at 100 / 300 archs against 0.0072 / 0.0022,
  true-front points at 300 15.3 vs 8.0 of 50.
- *Three or more objectives* (ParEGO, Knowles 2006): each ask draws a weight vector and
  scalarises the objectives (normalised by the observed range) by the augmented Chebyshev
  function; every Pareto point is the optimum of some weight vector, so successive asks
  spread along the front with one GP per ask (``acquisition: parego`` picks it for two).
- *Exploitation steps*: a share of the asks (``exploit``) takes the incumbent's untried
  neighbour with the best predicted value. EI prefers uncertain archs far away and left the
  NB201 optimum, one gene from the incumbent, untried in a third of the seeds; these steps
  raised the share of seeds that find it at 100 archs from 63 to 80 of 100.
- *Several fidelities* (BOHB, Falkner et al. 2018): with ``scheduler: hyperband`` results
  arrive at several fidelities; one at 1 epoch and one at 9 are not the same quantity, so
  the model learns from the highest fidelity told for at least ``init`` archs, and every arch
  told at any fidelity is "tried" (the scheduler, not the model, evaluates it further).
- Failed, pruned or infeasible trials get the worst scalar seen: the model learns to avoid
  their neighbourhood. Archs in flight (several workers) are not proposed again.

Cost per ask: one Cholesky of the n x n kernel; the hyperparameters are chosen again while
n < 50 and then whenever n has grown by a tenth, on at most ``FIT_POINTS`` results
(``benchmarks/strategy_overhead.py`` prints the figures at 1000 trials).
"""

from __future__ import annotations

import json
import math
from typing import Any, ClassVar

import numpy as np

from hwnas.core.constraints import violated
from hwnas.core.errors import ConfigError
from hwnas.core.pareto import Objectives, as_minimisation
from hwnas.space.base import Arch, Space
from hwnas.space.capabilities import Encodable
from hwnas.strategy.base import Proposal, Result, Strategy
from hwnas.strategy.ehvi import expected_hvi, non_dominated
from hwnas.strategy.gp import (
    GenePosterior,
    expected_improvement,
    fit_bounded,
    gene_codes,
    refit_due,
)

#: ParEGO's augmentation: a little of the weighted sum keeps weakly dominated points out
RHO = 0.05
#: Monte Carlo draws per candidate for EHVI
EHVI_DRAWS = 32
#: known costs kept per strategy (a table lookup each: cheap to take again)
PRICED_CACHE = 50_000


def _budget(label: str) -> float:
    """A fidelity label's size, to rank levels: epochs times the share of the data (no
    epochs: the estimator's default, the full budget)."""
    fid = json.loads(label) if label else {}
    return float(fid.get("epochs", math.inf)) * float(fid.get("data_fraction", 1.0))


def _finite(value: Any) -> float:
    """A priced cost as a float; NaN (not priced) for anything but a finite number, as the
    told results treat it."""
    if isinstance(value, int | float) and math.isfinite(value):
        return float(value)
    return math.nan


def _normal_scores(y: np.ndarray) -> np.ndarray:
    """Each result's rank as a standard normal quantile (a Gaussian copula)."""
    from scipy.stats import norm, rankdata

    return np.asarray(norm.ppf(rankdata(y) / (len(y) + 1)), dtype=float)


class BayesOpt(Strategy):
    name = "bo"
    requires: ClassVar[tuple[type, ...]] = (Encodable,)

    def __init__(
        self,
        space: Space,
        objectives: Objectives,
        seed: int,
        init: int = 10,
        candidates: int = 200,
        parents: int = 5,
        local_share: float = 0.8,
        exploit: float = 0.25,
        acquisition: str = "auto",
        ends: float = 0.2,
        known_costs: bool = True,
    ) -> None:
        super().__init__(space, objectives, seed)
        if acquisition == "ehvi" and len(objectives) != 2:
            raise ConfigError(
                f"strategy.acquisition: ehvi needs exactly two objectives, not "
                f"{len(objectives)} (parego takes any number)"
            )
        self.ehvi = acquisition == "ehvi" or (acquisition == "auto" and len(objectives) == 2)
        self.genes: dict[str, list[Any]] = space.parameters()  # type: ignore[attr-defined]
        self.init, self.n_candidates = init, candidates
        self.n_parents, self.local_share, self.exploit = parents, local_share, exploit
        self.ends = ends
        self.use_known = known_costs  # weigh candidates by costs priced before training
        self._priced: dict[str, dict[str, float] | None] = {}  # key -> known costs (a cache)
        # one per distinct arch told: its gene codes and minimisation vector (None: failed,
        # pruned or infeasible)
        self.observed: dict[str, dict[str, Any]] = {}
        # BOHB: the minimisation vectors per fidelity told (label -> key -> vector), in the
        # order told; the model learns from the highest fidelity with enough of them
        self.levels: dict[str, dict[str, list[float] | None]] = {}
        self.by_fidelity = True  # False: a study begun before levels existed (one level)
        self._chol_level: str | None = None
        self.pending: list[str] = []  # keys of proposed archs not told yet
        # per modelled column (one scalar, or each objective for EHVI): the kernel's weights
        # and noise, chosen on hyper_n results
        self.hypers: list[tuple[list[float], float]] = []
        self.hyper_n = 0
        self._chols: list[np.ndarray | None] = []  # each kernel's factor on the told archs

    # ---------------------------------------------------------------- coding
    def _codes(self, arch: Arch) -> list[int] | None:
        return gene_codes(self.space, self.genes, arch)

    def _arch(self, codes: list[int]) -> Arch:
        params = {k: v[c] for (k, v), c in zip(self.genes.items(), codes, strict=True)}
        return self.space.from_parameters(params)  # type: ignore[attr-defined]

    @staticmethod
    def _key(codes: list[int]) -> str:
        return ",".join(map(str, codes))

    # ------------------------------------------------------------------- ask
    def ask(self) -> Proposal:
        told = self._vectors()
        if len(self.observed) + len(self.pending) < self.init or told is None:
            return self._propose(self._sample(), {"op": "sample"})
        keys, vectors, level = told
        if level != self._chol_level:  # another fidelity's archs: factor afresh
            self._chols, self._chol_level = [None] * len(self.hypers), level
        x = np.array([self.observed[k]["codes"] for k in keys])
        if self.ehvi:
            return self._ask_ehvi(keys, x, vectors)
        y = _normal_scores(self._scalarise(vectors))
        gps = self._posteriors(x, [y])
        if gps is None:
            return self._propose(self._sample(), {"op": "sample"})
        order = np.argsort(y, kind="stable")[: self.n_parents]
        pool, local = self._candidates([self.observed[keys[i]]["codes"] for i in order], False)
        if not pool:
            return self._propose(self._sample(), {"op": "sample"})
        mean, sd = gps[0].predict(np.array(pool))
        # rounded: a factor extended step by step and one made at once (after a resume)
        # differ in the last bits, and must not pick different archs
        ei = np.round(expected_improvement(mean, sd, float(y.min())), 9)
        mean = np.round(mean, 9)
        i, op = int(np.argmax(ei)), "bo"
        if local and self.rng.random() < self.exploit:  # a step of local search, by the model
            i, op = int(np.argmin(mean[:local])), "bo-local"
        info = {"op": op, "ei": float(ei[i]), "mean": float(mean[i]), "sd": float(sd[i])}
        return self._propose(self._arch(pool[i]), info)

    def _ask_ehvi(self, keys: list[str], x: np.ndarray, vectors: np.ndarray) -> Proposal:
        """The candidate with the largest expected hypervolume improvement, in the space of
        each objective's normal scores."""
        z = np.column_stack([_normal_scores(col) for col in vectors.T])
        gps = self._posteriors(x, list(z.T))
        if gps is None:
            return self._propose(self._sample(), {"op": "sample"})
        front = non_dominated(z)
        pool, _ = self._candidates([self.observed[keys[i]]["codes"] for i in front], True)
        if not pool:
            return self._propose(self._sample(), {"op": "sample"})
        preds = [gp.predict(np.array(pool)) for gp in gps]
        mean = np.column_stack([m for m, _ in preds])
        sd = np.column_stack([s for _, s in preds])
        known = self._known_scores(pool, vectors)
        for j, scores in known.items():
            priced = ~np.isnan(scores)  # a cost known before training replaces its guess
            mean[priced, j], sd[priced, j] = scores[priced], 1e-9  # (> 0: EI divides by it)
        draws = np.random.default_rng(self.rng.getrandbits(32)).standard_normal(
            (EHVI_DRAWS, len(pool), 2)
        )
        gain = np.round(expected_hvi(z[front], mean, sd, z.max(0), draws), 9)
        i, op = int(np.argmax(gain)), "bo"
        if self.ends and self.rng.random() < self.ends:  # push one end of the front
            j = self.rng.randrange(2)
            if j in known and 1 - j not in known:  # a known cost's end is a lookup away
                j = 1 - j
            one = np.round(expected_improvement(mean[:, j], sd[:, j], float(z[:, j].min())), 9)
            i, op = int(np.argmax(one)), "bo-end"
        info = {
            "op": op,
            "ehvi": float(gain[i]),
            "mean": mean[i].round(9).tolist(),
            "sd": sd[i].tolist(),
        }
        return self._propose(self._arch(pool[i]), info)

    def weighs_known_costs(self) -> bool:
        return self.use_known

    def _known_scores(self, pool: list[list[int]], vectors: np.ndarray) -> dict[int, np.ndarray]:
        """For each objective the run prices before training (``known_costs``), every
        candidate's value as a normal score on the told archs' scale (NaN: not priced).

        A value between two told ones gets the score its rank among them implies (one equal
        to a told value gets that value's score exactly), a value beyond every told one a
        score beyond theirs; so EHVI compares a candidate's true cost with the front's in the
        space it measures area in."""
        from scipy.stats import norm

        if not self.use_known or self.known_costs is None:
            return {}
        costs = [self._price(codes) for codes in pool]
        out: dict[int, np.ndarray] = {}
        n = len(vectors)
        for j, (metric, direction) in enumerate(self.objectives):
            raw = np.array([_finite(None if c is None else c.get(metric)) for c in costs])
            if np.isnan(raw).all():
                continue  # not a cost any source prices before training
            told = np.sort(vectors[:, j])
            v = -raw if direction == "max" else raw
            below = np.searchsorted(told, v, side="left")
            equal = np.searchsorted(told, v, side="right") - below
            u = (below + 0.5 * equal + 0.5) / (n + 1)
            with np.errstate(invalid="ignore"):
                out[j] = np.where(np.isnan(v), np.nan, norm.ppf(u))
        return out

    def _price(self, codes: list[int]) -> dict[str, float] | None:
        key = self._key(codes)
        if key not in self._priced:
            assert self.known_costs is not None
            if len(self._priced) >= PRICED_CACHE:  # a big space: forget, price again
                self._priced.clear()
            self._priced[key] = self.known_costs(self._arch(codes))
        return self._priced[key]

    def _posteriors(self, x: np.ndarray, ys: list[np.ndarray]) -> list[GenePosterior] | None:
        """One GP per column of results, hyperparameters chosen again when due (None: a
        kernel does not factorise)."""
        n = len(x)
        try:
            if len(self.hypers) != len(ys) or refit_due(self.hyper_n or None, n):
                self.hypers = []
                for y in ys:
                    chosen = fit_bounded(x, y, self.rng)
                    self.hypers.append((chosen.weights.tolist(), chosen.noise))
                self.hyper_n, self._chols = n, [None] * len(ys)
            gps = []
            for j, y in enumerate(ys):
                weights, noise = self.hypers[j]
                gp = GenePosterior(x, y, np.array(weights), noise, self._chols[j])
                self._chols[j] = gp.chol  # the told archs keep their order: extended next
                gps.append(gp)
        except np.linalg.LinAlgError:
            self._chols = [None] * len(self.hypers)
            return None
        return gps

    def _propose(self, arch: Arch, info: dict[str, Any]) -> Proposal:
        codes = self._codes(arch)
        if codes is not None:
            self.pending.append(self._key(codes))
        return Proposal(arch, info=info)

    def _level(self) -> str | None:
        """The fidelity the model learns from (BOHB): the highest with ``init`` results, else
        the one with the most (a single one without a multi-fidelity scheduler)."""
        if not self.levels:
            return None
        ready = [lv for lv, told in self.levels.items() if len(told) >= self.init]
        if ready:
            return max(ready, key=lambda lv: (_budget(lv), lv))
        return max(self.levels, key=lambda lv: (len(self.levels[lv]), _budget(lv), lv))

    def _vectors(self) -> tuple[list[str], np.ndarray, str] | None:
        """The keys of the archs told at the model's fidelity, their minimisation vectors
        (a failed, pruned or infeasible arch as the worst seen per objective) and that
        fidelity (None: nothing valid)."""
        level = self._level()
        if level is None:
            return None
        keys = list(self.levels[level])
        told = [self.levels[level][k] for k in keys]
        valid = [v for v in told if v is not None]
        if not valid:
            return None
        worst = np.array(valid, dtype=float).max(0)
        return keys, np.array([worst if v is None else v for v in told], dtype=float), level

    def _scalarise(self, vectors: np.ndarray) -> np.ndarray:
        """One value per arch to minimise: the objective itself, or ParEGO's augmented
        Chebyshev function of a fresh weight vector (objectives scaled to [0, 1])."""
        if vectors.shape[1] == 1:
            return np.asarray(vectors[:, 0])
        lo, span = vectors.min(0), np.ptp(vectors, 0)
        f = (vectors - lo) / np.where(span > 0, span, 1.0)
        w = np.array([-math.log(1.0 - self.rng.random()) for _ in range(f.shape[1])])
        w /= w.sum()
        return np.asarray((f * w).max(1) + RHO * (f * w).sum(1))

    def _candidates(self, parents: list[list[int]], every: bool) -> tuple[list[list[int]], int]:
        """Untried neighbours (one gene changed) of the first parent that has any, or of
        every parent (``every``), then mutations of the parents and uniform samples; none
        told or in flight. Also how many of them are neighbours."""
        taken = set(self.observed) | set(self.pending)
        sizes = [len(v) for v in self.genes.values()]
        mutable = [g for g, s in enumerate(sizes) if s > 1]
        pool: dict[str, list[int]] = {}

        def add(codes: list[int] | None, repair: bool = True) -> None:
            if codes is not None and repair:  # as the space builds it (it may repair a pick)
                codes = self._codes(self._arch(codes)) or codes
            if codes is not None and self._key(codes) not in taken:
                pool.setdefault(self._key(codes), codes)

        # the whole neighbourhood of the best told arch that still has an untried neighbour:
        # no step of local search is missed, and a local optimum whose neighbours are all
        # told hands the local steps on to the next best (without it, 6 of the 16 misses in
        # 100 NB201 seeds sat on such an optimum with the local steps idle)
        for best in parents:
            for g in mutable:
                for c in range(sizes[g]):
                    if c != best[g]:
                        add([*best[:g], c, *best[g + 1 :]])
            if pool and not every:
                break
        local = len(pool)
        for t in range(self.n_candidates):
            if t < self.local_share * self.n_candidates and mutable:
                codes = list(self.rng.choice(parents))
                for g in self.rng.sample(mutable, min(len(mutable), self.rng.choice((1, 1, 2)))):
                    codes[g] = self.rng.choice([c for c in range(sizes[g]) if c != codes[g]])
                add(codes)
            else:
                add(self._codes(self.space.sample(self.rng)), repair=False)
        found = list(pool.values())
        keep = [not self._ruled_out(c) for c in found]
        return [c for c, k in zip(found, keep, strict=True) if k], sum(keep[:local])

    def _ruled_out(self, codes: list[int]) -> bool:
        """Whether a trial on this arch is known to be wasted before it runs: its net cannot
        learn (the space says it is degenerate), or a cost known before training breaks a
        constraint (it would be pruned untrained)."""
        if self.skip_degenerate and self.space.degenerate(self._arch(codes)):
            return True
        if not (self.use_known and self.known_costs is not None and self.constraints):
            return False
        costs = self._price(codes)
        return costs is not None and bool(violated(list(self.constraints), costs))

    def _sample(self) -> Arch:
        """A uniform sample, drawn again while ruled out (a degenerate arch, or one whose known
        cost breaks a constraint)."""

        def ruled_out(arch: Arch) -> bool:
            codes = self._codes(arch)
            if codes is not None and self._ruled_out(codes):
                return True  # a built net's counts only for these draws: a build per arch
            return self.use_known and self.built_infeasible(arch)  # is too dear for the pools

        return self.feasible_draw(lambda: self.space.sample(self.rng), ruled_out)

    # ------------------------------------------------------------------ tell
    def tell(self, result: Result) -> None:
        codes = self._codes(result.arch)
        if codes is None:
            return
        key = self._key(codes)
        if key in self.pending:
            self.pending.remove(key)
        vector = None
        if result.status == "complete" and result.feasible:
            v = as_minimisation(result.metrics, self.objectives)
            vector = list(v) if v is not None else None
        fid = result.fidelity
        label = json.dumps(fid.to_dict(), sort_keys=True) if fid and self.by_fidelity else ""
        self.levels.setdefault(label, {}).setdefault(key, vector)
        self.observed.setdefault(key, {"codes": codes, "vector": vector})

    # ----------------------------------------------------------------- state
    def state(self) -> dict[str, Any]:
        return {
            **super().state(),
            # as [key, value] pairs: the study stores JSON with sorted keys, and the order the
            # archs were told is the GP's data order (a resumed search proposed other archs)
            "observed": list(map(list, self.observed.items())),
            "pending": self.pending,
            "hypers": [list(h) for h in self.hypers],
            "hyper_n": self.hyper_n,
            "levels": {lv: list(map(list, told.items())) for lv, told in self.levels.items()},
            "by_fidelity": self.by_fidelity,
            "ends": self.ends,
            "known_costs": self.use_known,
        }

    def load_state(self, state: dict[str, Any]) -> None:
        super().load_state(state)
        self.observed = dict(state["observed"])  # pairs, or a mapping (sorted) from before
        self.pending = list(state["pending"])
        # "hyper": one kernel, as studies begun before EHVI kept it
        hypers = state.get("hypers", [state["hyper"]] if state.get("hyper") else [])
        self.hypers = [([float(w) for w in h[0]], float(h[1])) for h in hypers]
        self.hyper_n = int(state.get("hyper_n", 0))
        self._chols, self._chol_level = [None] * len(self.hypers), None
        if "hypers" not in state:  # begun before EHVI: it goes on as it began, by ParEGO
            self.ehvi = False
        # begun before end steps existed: it goes on without them, so a resume proposes the
        # archs the first run would have
        self.ends = float(state.get("ends", 0.0))
        # begun before known costs were used: likewise
        self.use_known = bool(state.get("known_costs", False))
        if "levels" in state:
            self.levels = {lv: dict(told) for lv, told in state["levels"].items()}
            self.by_fidelity = bool(state["by_fidelity"])
        else:  # begun before fidelity levels: its results (and the next) are one level
            self.levels = {"": {k: v["vector"] for k, v in self.observed.items()}}
            self.by_fidelity = False
