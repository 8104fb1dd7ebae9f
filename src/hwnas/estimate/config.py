"""Config sections of the built-in estimators, registered with their factories.

An estimator's factory is called as ``factory(section, task)``; see :mod:`hwnas.estimate.base`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal

from pydantic import Field, field_validator

from hwnas.core.config import KindConfig
from hwnas.core.registry import estimators
from hwnas.hardware.config import TableColumn, table_columns


@estimators.register("train", factory="hwnas.estimate.train:TrainEstimator")
class TrainEstimatorConfig(KindConfig):
    """Real training: SGD + momentum with SGDR (cosine annealing, warm restarts)."""

    name: Literal["train"] = "train"
    needs_model: ClassVar[bool] = True

    def produces(self) -> set[str]:
        return {"accuracy", "val_loss", "train_seconds"}

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

    @field_validator("metrics", mode="before")
    @classmethod
    def _metric_columns(cls, v: Any) -> Any:
        return table_columns(v)

    @field_validator("accuracy", "test_accuracy", mode="before")
    @classmethod
    def _column_str(cls, v: Any) -> Any:
        return {"column": v, "scale": 0.01} if isinstance(v, str) else v
