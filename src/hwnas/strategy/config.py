"""Config sections of the built-in search strategies, registered with their factories.

A strategy's factory is called as ``factory(section, space, objectives, seed)``.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import AliasChoices, Field, field_validator, model_validator

from hwnas.core.config import KindConfig
from hwnas.core.registry import strategies
from hwnas.estimate.config import InheritedScoring


@strategies.register("random", factory="hwnas.strategy.random:RandomSearch.from_config")
class RandomStrategyConfig(KindConfig):
    """Uniform random sampling of the space."""

    name: Literal["random"] = "random"


@strategies.register(
    "evolution", factory="hwnas.strategy.evolution:RegularizedEvolution.from_config"
)
class EvolutionStrategyConfig(KindConfig):
    """Regularized (aging) evolution, Real et al. 2019, with multi-objective selection."""

    name: Literal["evolution"] = "evolution"
    population: int = Field(12, ge=2, description="Population size P (oldest member dies).")
    sample_size: int = Field(4, ge=1, description="Tournament size S drawn from the population.")
    selection: Literal["pareto", "scalar"] = Field(
        "pareto",
        description="`pareto`: Pareto rank then crowding distance (NSGA-II); "
        "`scalar`: weighted sum of objectives.",
    )
    weights: dict[str, float] = Field(
        default_factory=dict,
        description="Per-objective weights for `scalar` selection (objectives are normalised "
        "by the population's range; default weight 1).",
    )
    crossover_prob: float = Field(
        0.1, ge=0.0, le=1.0, description="Probability a child is a crossover of two parents."
    )
    mutations: int = Field(1, ge=1, description="Mutations applied to each child.")
    fresh_tries: int = Field(
        0,
        ge=0,
        description="Re-draw a child up to this many times while it is an arch this search "
        "already proposed (its result would only re-join the population as a copy).",
    )
    guide: int = Field(
        0,
        ge=0,
        description="Predictor-guided evolution (encodable spaces): mutate this many children "
        "per proposal and evaluate the one a surrogate (a Gaussian process per objective on "
        "the genes, fitted on every result so far) ranks best; its prediction is stored "
        "with the trial (`info.predicted`) and the summary reports the surrogate's held-out "
        "accuracy. 0 or 1: plain evolution.",
    )
    guide_optimism: float = Field(
        1.0,
        ge=0.0,
        description="`guide`: children are ranked by the predicted mean minus this many "
        "standard deviations (0: the mean alone, which favoured near-copies of the best arch "
        "and made evolution worse on NB201).",
    )
    start: list[str] = Field(
        default_factory=list,
        description="Archs evaluated first, before random samples: a reference net's name "
        "(`airbench94`), inline arch JSON or `@file.json` — e.g. the hand-designed net to "
        "beat, so the search explores around it from the start.",
    )

    @model_validator(mode="after")
    def _sample_le_population(self) -> EvolutionStrategyConfig:
        if self.sample_size > self.population:
            raise ValueError("sample_size must be <= population")
        return self


@strategies.register("reinforce", factory="hwnas.strategy.reinforce:Reinforce.from_config")
class ReinforceStrategyConfig(KindConfig):
    """REINFORCE (Zoph & Le 2017): a policy over the space's choices, moved towards rewarded
    archs; with a cost objective the reward is MnasNet's
    acc * (cost / latency_target) ** latency_exponent."""

    name: Literal["reinforce"] = "reinforce"
    lr: float = Field(0.3, gt=0.0, description="Policy learning rate (per normalised reward).")
    baseline_decay: float = Field(
        0.9, ge=0.0, lt=1.0, description="Moving-average baseline: share kept per result."
    )
    explore: float = Field(
        0.05,
        ge=0.0,
        lt=1.0,
        description="Share of each choice drawn uniformly, so the policy never stops exploring "
        "(a converged policy would only propose known archs).",
    )
    latency_exponent: float = Field(
        -0.07,
        le=0.0,
        validation_alias=AliasChoices("latency_exponent", "exponent"),
        description="MnasNet's w: how much reward a cost above the target costs "
        "(`exponent` is accepted too).",
    )
    latency_target: float | None = Field(
        None,
        gt=0.0,
        validation_alias=AliasChoices("latency_target", "target"),
        description="MnasNet's target T for the cost objective, in its unit (e.g. your "
        "latency bound in ms); default: the median of the recent costs seen (`target` is "
        "accepted too).",
    )


@strategies.register("bo", factory="hwnas.strategy.bo:BayesOpt.from_config")
class BoStrategyConfig(KindConfig):
    """Bayesian optimisation with a Gaussian process on the space's genes (encodable spaces).

    Expected improvement over the best arch's neighbours and mutations (BANANAS-style); for
    two objectives expected hypervolume improvement over the neighbours and mutations of
    every front point, for more ParEGO scalarisation. With `scheduler: hyperband` this is BOHB:
    the model learns from the highest fidelity told for `init` archs."""

    name: Literal["bo"] = "bo"
    init: int = Field(
        10,
        ge=1,
        description="Uniform samples before the model proposes; with several fidelities, the "
        "results a fidelity needs before the model learns from it.",
    )
    candidates: int = Field(
        200, ge=1, description="Archs scored by expected improvement per proposal."
    )
    parents: int = Field(
        5,
        ge=1,
        description="Best archs so far whose mutations (1-2 genes) are candidates (EHVI: "
        "every point of the front told so far instead).",
    )
    local_share: float = Field(
        0.8,
        ge=0.0,
        le=1.0,
        description="Share of the candidates that are mutations; the rest are uniform samples.",
    )
    acquisition: Literal["auto", "ehvi", "parego"] = Field(
        "auto",
        description="Several objectives: `ehvi` (expected hypervolume improvement, two "
        "objectives), `parego` (a random Chebyshev scalarisation per proposal, any number); "
        "`auto`: ehvi for two objectives, parego for more.",
    )
    exploit: float = Field(
        0.25,
        ge=0.0,
        le=1.0,
        description="One objective or parego: share of proposals that are the untried "
        "neighbour of the best arch with the best predicted value (a model-guided local-search step) instead of the best "
        "expected improvement: it finishes the search around the incumbent, where EI, "
        "drawn to uncertain archs far away, leaves near-ties untried.",
    )
    ends: float = Field(
        0.2,
        ge=0.0,
        le=1.0,
        description="Two objectives (ehvi): share of proposals that take the best expected "
        "improvement of one objective alone, either at random, instead of the best EHVI: "
        "steps that push the front's two ends (the fastest nets that learn, the most "
        "accurate), where EHVI gains little per arch. 0: EHVI only.",
    )
    known_costs: bool = Field(
        True,
        description="Two objectives (ehvi): where a cost source prices an arch without "
        "training or building it (a `tabular` target, an arch-level latency predictor, a "
        "`lut` target's entries already timed), weigh every candidate by its true cost "
        "instead of the model's guess of it, and never propose one whose known cost breaks "
        "a constraint. Budgets still count trained archs; `false`: model every objective.",
    )


@strategies.register("optuna", factory="hwnas.strategy.optuna:OptunaStrategy.from_config")
class OptunaStrategyConfig(KindConfig):
    """An Optuna sampler over the space's genes (needs the `optuna` package)."""

    name: Literal["optuna"] = "optuna"
    sampler: Literal["tpe", "nsga2", "random"] = Field(
        "tpe", description="`tpe` (multivariate TPE), `nsga2` or `random`."
    )
    population: int = Field(50, ge=2, description="Population size of `nsga2`.")


@strategies.register("nash", factory="hwnas.strategy.nash:Nash.from_config")
class NashStrategyConfig(KindConfig):
    """NASH hill climbing with network morphisms (Elsken et al. 2017); needs `space: graph`."""

    name: Literal["nash"] = "nash"
    n_steps: int = Field(5, ge=0, description="Hill-climbing steps.")
    n_neigh: int = Field(
        8, ge=2, description="Candidates per step: n_neigh - 1 children plus the parent."
    )
    n_nm: int = Field(5, ge=1, description="Morphisms applied to make each child.")
    epochs_init: int = Field(20, ge=1, description="Epochs the start net trains.")
    epochs_neigh: int = Field(17, ge=1, description="Epochs each candidate trains per step.")
    epochs_final: int = Field(20, ge=1, description="Epochs the last best net trains on.")
    lr_start: float = Field(0.05, gt=0, description="SGDR: learning rate at a cycle's start.")
    lr_end: float = Field(0.0, ge=0, description="SGDR: learning rate at a cycle's end.")
    guided: bool = Field(
        False,
        description="Pick each child's morphisms by a Gaussian process over graph features "
        "(upper confidence bound of accuracy) instead of uniformly.",
    )
    guide_pool: int = Field(16, ge=2, description="`guided`: random sequences scored per child.")
    guide_kappa: float = Field(1.0, ge=0, description="`guided`: UCB exploration weight.")
    joint_scaling: bool = Field(
        False,
        description="Replace deeper/wider by one `scale` morphism growing depth and width "
        "together (space.scale_depth / scale_width).",
    )
    final_cutout: int | None = Field(
        None,
        ge=0,
        description="Cutout side for the final training only (the short trainings of the "
        "climb stay as configured); null = the estimator's `cutout`.",
    )


@strategies.register("fbnet", factory="hwnas.oneshot.strategy:FbnetSearch.from_config")
class FbnetStrategyConfig(KindConfig):
    """Differentiable hardware-aware search (FBNet, Wu et al. 2019; SqueezeNAS, Shaw et al.
    2019): architecture weights theta per position, Gumbel-softmax paths through a supernet,
    and a resource loss E_theta[C] from per-choice costs. Trained by the `supernet` section;
    each setting (alpha or target) derives nets that are then trained stand-alone."""

    trains_supernet: ClassVar[bool] = True
    name: Literal["fbnet"] = "fbnet"
    cost_metric: str = Field(
        "latency_ms",
        description="The per-choice cost: `latency_ms` (the target's lookup table, timed on "
        "its runtime or board, or its device model's estimate), `latency_ms@label` (a cost "
        "source's), `energy_mj[@label]` (a device model's), `macs` or `params`.",
    )
    loss: Literal["additive", "multiplicative"] = Field(
        "additive",
        description="`additive`: CE + alpha * E[C] / C_ref (C_ref: E[C] of uniform theta, so "
        "alpha is unitless); `multiplicative`: FBNet's CE * alpha * log(1 + E[C] / C_min) ** "
        "beta (C_min: the cheapest net's cost, so the log is positive in any unit).",
    )
    alpha: float | None = Field(
        None,
        ge=0.0,
        description="Weight of the resource loss; default 0.2 (additive, multiplicative) or "
        "1.0 with a cost target (the penalty alpha * |E[C] / T - 1|).",
    )
    beta: float = Field(0.6, ge=0.0, description="FBNet's exponent of the multiplicative form.")
    alphas: list[float] = Field(
        default_factory=list,
        description="A sweep of the additive form: one setting per value; a family of nets.",
    )
    betas: list[float] = Field(
        default_factory=list,
        description="A sweep of the multiplicative form (where alpha only scales the loss "
        "and beta trades accuracy for cost): one setting per value.",
    )
    cost_target: float | None = Field(
        None,
        gt=0.0,
        description="Ask for a net of this cost (unit of `cost_metric`, e.g. 2.0 ms); default: "
        "the bound of a `<=` constraint on `cost_metric`, if there is one.",
    )
    cost_targets: list[float] = Field(
        default_factory=list, description="A sweep of targets: one setting per value."
    )
    per_setting: int = Field(
        1,
        ge=1,
        le=16,
        description="Nets derived per setting: the most likely arch under theta, then the "
        "next most likely (one position changed at a time).",
    )
    tolerance: float = Field(
        0.05,
        gt=0.0,
        lt=1.0,
        description="With a target: a derived net whose table cost misses it by more than "
        "this share is fixed up (greedy changes of the least likely picks toward the target). "
        "Half of the +-10 % a measured net is judged by, so the table's own error fits in "
        "the rest.",
    )
    measured_fixes: int = Field(
        2,
        ge=0,
        description="With a target: each derived net is measured on the run's target (the "
        "cost source that gives `cost_metric`); while it misses the target by more than "
        "`tolerance`, the table is asked for the target scaled by the table's own error on "
        "that net and the net is fixed up again, up to this many readings (the table's error "
        "depends on what a net is made of: FBNet's skip-heavy nets read ~12 % slow on a CPU). "
        "0 = trust the table.",
    )
    load_factor: float = Field(
        1.35,
        gt=1.0,
        description="A reading of a derived net this many times the table's cost of the same "
        "net, twice in a row or as the last reading, is taken as load on the host and not "
        "acted on (the table's net is kept, `info.fixed_up.disturbed`): readings right after "
        "the supernet trained ran 1.5-2.2x slow on an H100 box's CPU. Raise it where the table "
        "itself errs more (cpu-ort tables erred within 25 % on every composition measured).",
    )

    @model_validator(mode="after")
    def _sweep(self) -> FbnetStrategyConfig:
        if any(a < 0 for a in self.alphas) or any(t <= 0 for t in self.cost_targets):
            raise ValueError("alphas must be >= 0 and cost_targets > 0")
        if (self.cost_target is not None or self.cost_targets) and (self.alphas or self.betas):
            raise ValueError("give a sweep of alphas, betas or cost targets, not two")
        if self.alphas and self.betas:
            raise ValueError("alphas sweep the additive loss and betas the multiplicative one")
        return self


@strategies.register("darts", factory="hwnas.oneshot.strategy:DartsSearch.from_config")
class DartsStrategyConfig(KindConfig):
    """DARTS (first order), GDAS or beta-DARTS on a one-shot space, for accuracy alone; trained by the
    `supernet` section, the derived cells trained stand-alone (or looked up in a table)."""

    trains_supernet: ClassVar[bool] = True
    name: Literal["darts"] = "darts"
    variant: Literal["darts", "gdas", "beta"] = Field(
        "darts",
        description="`darts`: mixed ops weighted by softmax(theta) (collapses onto "
        "parameter-free ops on NAS-Bench-201); `gdas`: one Gumbel-sampled op per edge "
        "(Dong & Yang 2019), which does not; `beta`: DARTS with the Beta-Decay regulariser "
        "on theta (beta-DARTS, Ye et al. 2022; `supernet.beta_decay`), which does not either "
        "and, published, finds NAS-Bench-201's near-optimum in 50 epochs.",
    )
    per_setting: int = Field(
        1, ge=1, le=16, description="Nets derived: the most likely, then the next most likely."
    )


@strategies.register("spos", factory="hwnas.oneshot.spos:SposSearch.from_config")
class SposStrategyConfig(InheritedScoring, KindConfig):
    """Single-path one-shot (SPOS, Guo et al. 2020): the supernet trains along uniformly
    drawn single paths (the `supernet` section's warm-up); then the `search` strategy
    explores the space scoring each arch with inherited weights after BatchNorm
    recalibration (seconds per arch), and the nets spread along that search's front are
    trained stand-alone (stage `derived`, counted by the budget)."""

    trains_supernet: ClassVar[bool] = True
    name: Literal["spos"] = "spos"
    search: dict[str, Any] = Field(
        default_factory=lambda: {"name": "evolution", "population": 50, "sample_size": 10},
        description="The strategy that searches the trained supernet, a `strategy` section "
        "of its own (evolution, random, optuna...; not a one-shot one).",
    )
    evaluations: int = Field(
        500, ge=1, description="Archs that search scores with inherited weights."
    )
    derive: int = Field(
        5,
        ge=1,
        description="Nets of its front trained stand-alone, evenly spread along the first "
        "cost objective (the budget may stop sooner).",
    )

    @field_validator("search", mode="before")
    @classmethod
    def _inner(cls, v: Any) -> Any:
        """`strategy.search=random` (a kind's name alone, as for any section) or a mapping,
        validated as a strategy section here, so a bad one is refused before a search."""
        v = {"name": v} if isinstance(v, str) else v
        strategies.validate(v, where="strategy.search")
        return v
