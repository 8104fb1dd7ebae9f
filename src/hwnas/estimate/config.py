"""Config sections of the built-in estimators, registered with their factories.

An estimator's factory is called as ``factory(section, task)``; see :mod:`hwnas.estimate.base`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from hwnas.core.config import KindConfig, Section
from hwnas.core.metrics import ProxyName
from hwnas.core.registry import estimators
from hwnas.hardware.config import TableColumn, table_columns


class FastRecipeConfig(Section):
    """The fast GPU recipe (``recipe: fast``): the fast-training literature's tricks, each a
    switch so its worth can be measured (``benchmarks/fast_recipe.py``)."""

    batch_size: int = Field(1024, ge=1, le=65536, description="Mini-batch size.")
    lr: float = Field(1.5, gt=0.0, description="Peak learning rate (mean loss over the batch).")
    bias_lr_scale: float = Field(
        64.0, gt=0.0, description="BatchNorm biases learn this many times faster (no decay)."
    )
    momentum: float = Field(0.85, ge=0.0, lt=1.0, description="SGD momentum (Nesterov).")
    weight_decay: float = Field(
        0.002,
        ge=0.0,
        description="Decoupled weight decay per step at peak rate (follows the schedule).",
    )
    label_smoothing: float = Field(0.2, ge=0.0, lt=1.0, description="Label smoothing.")
    warmup: float = Field(
        0.23, ge=0.0, lt=1.0, description="Share of the steps the rate rises over."
    )
    lr_start: float = Field(0.2, ge=0.0, description="Rate at step 0, as a share of the peak.")
    lr_end: float = Field(0.07, ge=0.0, description="Rate at the last step, share of the peak.")
    translate: int = Field(
        2, ge=0, le=8, description="Random translation in pixels (reflect padding); 0 = off."
    )
    flip: Literal["alternate", "random", "off"] = Field(
        "alternate",
        description="Horizontal flips: `alternate` mirrors each image every other epoch "
        "(random in the first), `random` half of them each epoch (data.flip: false wins).",
    )
    cutout: int = Field(0, ge=0, description="Cutout square side in pixels; 0 = off.")
    lookahead: bool = Field(
        True, description="Lookahead weight averaging every 5 steps, slow weights at the end."
    )
    lookahead_decay: float = Field(
        0.95**5, ge=0.0, lt=1.0, description="Lookahead's final decay (ramps up cubically)."
    )
    identity_init: bool = Field(
        True, description="Convs start as identity on their first input channels (dirac)."
    )
    freeze_bn_scale: bool = Field(
        True, description="BatchNorm scales stay at 1 (only their biases learn)."
    )
    whiten: bool = Field(
        True, description="Nets with a data-set stem (fastcnn's whitening) are set from data."
    )
    channels_last: bool = Field(True, description="NHWC memory layout on CUDA.")
    dtype: Literal["bf16", "fp16", "fp32"] = Field(
        "bf16", description="Autocast precision on CUDA (fp32 on the CPU)."
    )
    eval_every_epoch: bool = Field(
        False,
        description="Validate after every epoch (a pruner or scheduler always does); else "
        "only after the last, which saves ~10 % of a short training.",
    )


@estimators.register("train", factory="hwnas.estimate.train:TrainEstimator")
class TrainEstimatorConfig(KindConfig):
    """Real training: SGD + SGDR (`recipe: sgdr`) or the fast GPU recipe (`recipe: fast`)."""

    name: Literal["train"] = "train"
    needs_model: ClassVar[bool] = True

    def produces(self) -> set[str]:
        return {"accuracy", "val_loss", "train_seconds"}

    recipe: Literal["auto", "sgdr", "fast"] = Field(
        "auto",
        description="`sgdr`: SGD + cosine warm restarts with data.batch_size; `fast`: the fast "
        "GPU recipe of the `fast` section (data resident on the GPU, large batches, label "
        "smoothing, lookahead, identity init...); `auto`: fast on CUDA for images of at "
        "least 16x16 when the space's nets are made for it (`fastcnn`), sgdr otherwise.",
    )
    fast: FastRecipeConfig = Field(
        default_factory=FastRecipeConfig, description="Settings of `recipe: fast`."
    )

    epochs: int = Field(6, ge=1, description="Training epochs (the fidelity).")
    data_fraction: float = Field(
        1.0, gt=0.0, le=1.0, description="Fraction of the training split used (fidelity)."
    )
    lr: float = Field(0.05, gt=0.0, description="Peak learning rate.")
    lr_min: float = Field(0.0, ge=0.0, description="Learning rate at the end of each cycle.")
    momentum: float = Field(0.9, ge=0.0, lt=1.0, description="SGD momentum (Nesterov).")
    weight_decay: float = Field(5e-4, ge=0.0, description="L2 weight decay.")
    label_smoothing: float = Field(0.0, ge=0.0, lt=1.0, description="Label smoothing.")
    cutout: int = Field(
        0,
        ge=0,
        description="Cutout: side (pixels) of a square zeroed at a random place in every "
        "training image; 0 = off. A regulariser for long trainings; no inference cost.",
    )
    restart_epochs: int = Field(
        0, ge=0, description="SGDR first cycle length T_0 in epochs; 0 = one cycle (no restart)."
    )
    restart_mult: int = Field(2, ge=1, description="SGDR cycle length multiplier T_mult.")
    amp: bool = Field(True, description="Mixed precision (bf16) on CUDA; ignored on CPU.")
    tta_views: Literal[0, 2, 6] = Field(
        0,
        description="Test-time augmentation of final models' test accuracy, stored apart as "
        "`test_accuracy_tta`: 2 = mirror, 6 = mirror x three 1-pixel shifts; 0 = off.",
    )
    compile_epochs: int = Field(
        0,
        ge=0,
        description="torch.compile the net for trainings of at least this many epochs; 0 = "
        "never. Compiling costs tens of seconds per net and speeds every later step up, so it "
        "pays off on long trainings (a final net) and not on short ones.",
    )
    compile_mode: Literal["default", "reduce-overhead", "max-autotune-no-cudagraphs"] = Field(
        "default", description="torch.compile mode used with `compile_epochs`."
    )
    threads: int = Field(
        0, ge=0, description="CPU threads for training; 0 = PyTorch's default for the machine."
    )
    bn_recalibration_steps: int = Field(
        100,
        ge=0,
        description="A net validated after fewer optimizer steps than this has its BatchNorm "
        "statistics recomputed first (one pass over up to 50 training batches): after a few "
        "steps the running averages lag the weights, and a 1-epoch digits net read 10-23 % "
        "where the same weights read 58-93 % recalibrated. 0 = never.",
    )


@estimators.register("tabular", factory="hwnas.estimate.tabular:TableEstimator")
class TabularEstimatorConfig(KindConfig):
    """Look accuracy up in a table of published results (e.g. NAS-Bench-201): no training."""

    name: Literal["tabular"] = "tabular"
    needs_model: ClassVar[bool] = False

    def produces(self) -> set[str]:
        return {"accuracy", *self.metrics}

    path: str = Field(description="CSV table (optionally .gz), one row per architecture.")
    arch_column: str = Field("arch_str", description="Column holding the space's arch key.")
    accuracy: TableColumn = Field(
        default_factory=lambda: TableColumn(column="cifar10_valid_acc", scale=0.01),
        description="Validation accuracy column, searched on (`{column, scale}`; scale to 0-1).",
    )
    test_accuracy: TableColumn | None = Field(
        default_factory=lambda: TableColumn(column="cifar10_test_acc", scale=0.01),
        description="Test accuracy column, reported for the final models only.",
    )
    metrics: dict[str, TableColumn] = Field(
        default_factory=dict,
        description="More metrics from the table: `name: column` or `{column, scale}`.",
    )
    noise: float = Field(
        0.0,
        ge=0.0,
        le=0.5,
        description="Standard deviation of Gaussian noise added to the looked-up accuracy of "
        "each trial (drawn from the trial's seed; in the scaled units, e.g. 0.003 = 0.3 "
        "points): a table holds the mean over training seeds, so this imitates the "
        "seed-to-seed spread a strategy meets in real training. The test accuracy stays "
        "the table's.",
    )

    @field_validator("metrics", mode="before")
    @classmethod
    def _metric_columns(cls, v: Any) -> Any:
        return table_columns(v)

    @field_validator("accuracy", "test_accuracy", mode="before")
    @classmethod
    def _column_str(cls, v: Any) -> Any:
        return {"column": v, "scale": 0.01} if isinstance(v, str) else v


class InheritedScoring(Section):
    """How an arch is scored with weights inherited from a supernet (SPOS)."""

    bn_batches: int = Field(
        10,
        ge=1,
        description="Training batches its BatchNorm statistics are recalibrated on before it "
        "is scored (the supernet's statistics mix every path).",
    )
    eval_images: int = Field(
        0, ge=0, description="Validation images it is scored on; 0 = the whole split."
    )
    batch_size: int = Field(256, ge=1, description="Batch size of recalibration and scoring.")
    finetune_steps: int = Field(
        0,
        ge=0,
        description="SGD steps each arch's own path trains from its inherited weights before "
        "it is scored (the same training batches for every arch; the supernet is left as it "
        "was). Paths with no parameter-free route through the NB201 cell score near chance "
        "with inherited weights alone, since their convs were trained as corrections beside "
        "skips: on a CPU probe (benchmarks/spos_cifar_cpu.py, docs/oneshot.md) 40 steps moved "
        "Kendall's tau from -0.33 to 0.16. 0: inherited weights as they are (SPOS).",
    )
    finetune_lr: float = Field(
        0.02, gt=0.0, description="Learning rate of those steps (SGD, momentum 0.9)."
    )


@estimators.register("supernet", factory="hwnas.oneshot.estimator:SupernetEstimator")
class SupernetEstimatorConfig(InheritedScoring, KindConfig):
    """Inherited weights: an arch's accuracy with the weights of a trained supernet (a
    `spos` study's `supernet/warmup.pt`), after BatchNorm recalibration; seconds per arch, for
    any strategy. The `final` section then trains the front stand-alone."""

    name: Literal["supernet"] = "supernet"
    needs_model: ClassVar[bool] = True
    #: it scores nets without training them: the final stage trains with another estimator
    trains: ClassVar[bool] = False

    def produces(self) -> set[str]:
        return {"accuracy", "val_loss"}

    weights: str = Field(
        description="The trained supernet: `supernet/warmup.pt` of a study of the same space "
        "and data (`strategy: spos` trains one with uniform single paths)."
    )


@estimators.register("zero_cost", factory="hwnas.estimate.zero_cost:ZeroCostEstimator")
class ZeroCostEstimatorConfig(KindConfig):
    """A zero-cost proxy: a score of the untrained net from one batch of training images
    (milliseconds to a second per arch), stored as metric `zc_<proxy>` (maximised), e.g.
    `objectives: {zc_synflow: max, latency_ms: min}`."""

    name: Literal["zero_cost"] = "zero_cost"
    needs_model: ClassVar[bool] = True
    #: it scores nets without training them: the final stage trains with another estimator
    trains: ClassVar[bool] = False

    def produces(self) -> set[str]:
        return {f"zc_{self.proxy}"}

    proxy: ProxyName = Field(
        "synflow",
        description="`synflow`, `grad_norm`, `snip`, `naswot` (activation codes' "
        "log-determinant), `jacob_cov` (input-Jacobian correlation), `zico` (gradients' "
        "mean over deviation), `meco` (channel correlation's smallest eigenvalue); "
        "docs/zero_cost.md says what each computes.",
    )
    batch_size: int = Field(
        128, ge=2, description="Training images the proxy sees (the same batch for every arch)."
    )
    data_seed: int = Field(0, ge=0, description="Which batch: the seed it is drawn with.")


class PrefilterConfig(Section):
    """A zero-cost proxy beside a training estimator: the best-scored of a random sample are
    trained first (a warm start for the strategy), and, with `below`, later proposals scoring
    under that quantile of the sample are not trained (pruned with reason `prefilter`, not
    counted by the budget)."""

    proxy: ProxyName | None = Field(
        None, description="The proxy (see `estimator: zero_cost`); unset: no prefilter."
    )
    sample: int = Field(200, ge=1, description="Random archs scored before the search.")
    keep: int = Field(
        20, ge=0, description="The best-scored of them, trained first (0: no warm start)."
    )
    below: float = Field(
        0.0,
        ge=0.0,
        lt=1.0,
        description="Skip a later proposal scoring below this quantile of the sample's "
        "scores (0 = off; 0.5 = train only proposals better than the sample's median).",
    )
    batch_size: int = Field(128, ge=2, description="Training images the proxy sees.")
