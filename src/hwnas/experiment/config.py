"""Validated experiment configuration.

One pydantic model per section; a section with several kinds picks one by its ``name`` key
(a discriminated union), so a typo in a key or a kind is an error that names the field instead
of a silently ignored setting. This module imports no torch: the CLI validates configs fast.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import (
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    SecretStr,
    Tag,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from hwnas.errors import UserError


class ConfigError(UserError):
    """A configuration problem, worded as one line that names the offending key."""


_DEFAULT_KINDS = {
    "data": "digits",
    "space": "chain",
    "strategy": "evolution",
    "estimator": "train",
    "target": "cpu-ort",
    "executor": "inprocess",
}


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


# ----------------------------------------------------------------------------- data
class DataConfig(_Section):
    """Which dataset, and how it is split, subset and augmented."""

    name: Literal["digits", "cifar10", "imagefolder"] = Field(
        "digits", description="Dataset kind: `digits` (bundled, offline), `cifar10`, `imagefolder`."
    )
    path: str | None = Field(
        None,
        description="Dataset location for `cifar10` / `imagefolder`: a directory, a `.tar.gz`, "
        "or (cifar10) torchvision's python-pickle folder.",
    )
    resolution: int | None = Field(
        None, ge=4, le=1024, description="Square input size in pixels; default: the data's own."
    )
    subset: float = Field(
        1.0, gt=0.0, le=1.0, description="Fraction of the training data used (stratified, seeded)."
    )
    val_fraction: float = Field(
        0.2, gt=0.0, lt=0.9, description="Share of the training data held out for validation."
    )
    batch_size: int = Field(64, ge=1, le=65536, description="Mini-batch size for training.")
    augment: bool = Field(
        None,
        validate_default=True,
        description="Random crop (zero padding of 4 pixels, 1 below 16x16) and horizontal "
        "flip while training. Default: the dataset's usual recipe, on for `digits` and "
        "`cifar10`, off for `imagefolder` (its images are unknown).",
    )
    flip: bool = Field(
        None,
        validate_default=True,
        description="With `augment`: also mirror half the images. Default: on, except for "
        "`digits` (a mirrored digit is another shape); turn it off for text and signs too.",
    )
    cache_dir: str | None = Field(
        None, description="Where decoded uint8 arrays are cached; default `~/.cache/hwnas`."
    )

    @field_validator("augment", "flip", mode="before")
    @classmethod
    def _dataset_recipe(cls, v: Any, info: ValidationInfo) -> Any:
        """Unset augmentation follows the dataset: 1-pixel shifts make digits a task where a
        larger net earns its latency (without them, 15 us nets already saturate), while a
        mirrored digit is not a digit."""
        if v is not None:
            return v
        name = info.data.get("name", "digits")
        if info.field_name == "augment":
            return name != "imagefolder"
        return name != "digits"


# ---------------------------------------------------------------------------- space
class StageConfig(_Section):
    """One stage of a chain space: its depth and width choices and its stride."""

    depths: list[int] = Field(
        description="Allowed numbers of blocks in this stage; 0 drops the stage (its stride "
        "and width too), so the search can reach very small networks."
    )
    widths: list[int] = Field(description="Allowed output channel counts of this stage.")
    stride: int = Field(1, ge=1, le=4, description="Stride of the stage's first block.")

    @field_validator("depths", "widths")
    @classmethod
    def _unique(cls, v: list[int], info: ValidationInfo) -> list[int]:
        if not v:
            raise ValueError("must list at least one choice")
        least = 0 if info.field_name == "depths" else 1
        if any(x < least for x in v):
            raise ValueError(f"choices must be >= {least}")
        return sorted(set(v))


def _default_stages() -> list[StageConfig]:
    return [
        StageConfig(depths=[0, 1, 2], widths=[4, 8, 16, 24], stride=1),
        StageConfig(depths=[0, 1, 2, 3], widths=[8, 16, 24, 32], stride=2),
        StageConfig(depths=[0, 1, 2, 3], widths=[16, 24, 32, 48, 64], stride=2),
    ]


class ChainSpaceConfig(_Section):
    """MobileNetV2/FBNet-like chain: stem conv -> stages of MBConv blocks -> head."""

    name: Literal["chain"] = "chain"
    stem_channels: int = Field(8, ge=1, description="Output channels of the stem 3x3 conv.")
    stem_stride: int = Field(1, ge=1, le=4, description="Stride of the stem conv.")
    stages: list[StageConfig] = Field(default_factory=_default_stages, description="Stages.")
    kernels: list[int] = Field([3, 5, 7], description="Depthwise kernel sizes of MBConv ops.")
    expansions: list[int] = Field([1, 3, 6], description="Expansion ratios of MBConv ops.")
    allow_skip: bool = Field(
        True, description="Offer `skip` (identity) where a block keeps its shape."
    )
    head_channels: int = Field(0, ge=0, description="1x1 conv before pooling; 0 = none.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout before the classifier.")

    @field_validator("kernels")
    @classmethod
    def _odd_kernels(cls, v: list[int]) -> list[int]:
        if not v or any(k < 1 or k % 2 == 0 for k in v):
            raise ValueError("kernels must be odd positive integers")
        return sorted(set(v))

    @field_validator("expansions")
    @classmethod
    def _expansions(cls, v: list[int]) -> list[int]:
        if not v or any(e < 1 for e in v):
            raise ValueError("expansions must be integers >= 1")
        return sorted(set(v))

    @field_validator("stages")
    @classmethod
    def _stages(cls, v: list[StageConfig]) -> list[StageConfig]:
        if not v:
            raise ValueError("need at least one stage")
        return v


CELL_OPS = ("none", "skip_connect", "nor_conv_1x1", "nor_conv_3x3", "avg_pool_3x3")


class CellSpaceConfig(_Section):
    """NAS-Bench-201 cell: 4 nodes, 6 edges, 5 ops; macro skeleton of the benchmark."""

    name: Literal["cell"] = "cell"
    channels: int = Field(16, ge=1, description="C: channels of the first stage (2C, 4C after).")
    cells_per_stage: int = Field(5, ge=1, description="N: cells in each of the three stages.")
    ops: list[str] = Field(
        list(CELL_OPS), description="Allowed ops per edge (a subset of the five)."
    )

    @field_validator("ops")
    @classmethod
    def _known_ops(cls, v: list[str]) -> list[str]:
        unknown = [o for o in v if o not in CELL_OPS]
        if unknown or not v:
            raise ValueError(f"ops must be a non-empty subset of {list(CELL_OPS)}")
        return [o for o in CELL_OPS if o in v]


class GraphSpaceConfig(_Section):
    """Multi-branch CNN DAGs grown from a small start net by NASH network morphisms."""

    name: Literal["graph"] = "graph"
    channels: list[int] = Field(
        [16, 32, 64], description="Start net: conv widths per resolution level (pool between)."
    )
    depth: int = Field(1, ge=1, description="Start net: convs per level.")
    kernel: int = Field(3, ge=1, description="Start net: kernel size.")
    morphisms: list[Literal["deeper", "wider", "skip", "scale"]] = Field(
        ["deeper", "wider", "skip"],
        description="Morphism kinds to sample (uniformly); `scale` = joint depth+width step.",
    )
    deeper_kernels: list[int] = Field([3, 5], description="Kernels of inserted layers.")
    widen_factors: list[int] = Field([2, 4], description="Factors a conv may be widened by.")
    skip_joins: list[Literal["add", "concat"]] = Field(
        ["add", "concat"], description="How a new skip joins its target."
    )
    scale_depth: float = Field(1.2, gt=1.0, description="`scale`: depth ratio per step.")
    scale_width: float = Field(1.1, gt=1.0, description="`scale`: width ratio per step.")
    max_channels: int = Field(512, ge=1, description="No conv grows wider than this.")
    max_layers: int = Field(40, ge=1, description="No more convs than this.")
    max_nodes: int = Field(80, ge=1, description="No more nodes than this.")
    sample_morphs: int = Field(
        8, ge=0, description="Random archs: the start net after 0..N random morphisms."
    )


class FbnetSpaceConfig(_Section):
    """FBNet (Wu et al. 2019): 22 layers x 9 blocks on a fixed macro net (HW-NAS-Bench's space)."""

    name: Literal["fbnet"] = "fbnet"
    width_multiplier: float = Field(
        1.0, gt=0.0, le=4.0, description="Scales every width (rounded to a multiple of 8)."
    )
    stem_stride: int = Field(
        2, ge=1, le=4, description="Stride of the 3x3 stem (2 for ImageNet, 1 for small inputs)."
    )
    head_channels: int = Field(1984, ge=0, description="1x1 conv before pooling; 0 = none.")


class UserSpaceConfig(_Section):
    """A space you wrote: a subclass of `hwnas.space.user.UserSpace` (see docs/user-spaces.md)."""

    name: str = Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="`module.path:ClassName`, importable from where hwnas runs.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the class's constructor."
    )


def _space_kind(v: Any) -> str:
    name = v.get("name", "chain") if isinstance(v, dict) else getattr(v, "name", "chain")
    return "user" if ":" in str(name) else str(name)


SpaceConfig = Annotated[
    Annotated[ChainSpaceConfig, Tag("chain")]
    | Annotated[CellSpaceConfig, Tag("cell")]
    | Annotated[GraphSpaceConfig, Tag("graph")]
    | Annotated[FbnetSpaceConfig, Tag("fbnet")]
    | Annotated[UserSpaceConfig, Tag("user")],
    Discriminator(_space_kind),
]


# ------------------------------------------------------------------------- strategy
class RandomStrategyConfig(_Section):
    """Uniform random sampling of the space."""

    name: Literal["random"] = "random"


class EvolutionStrategyConfig(_Section):
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

    @model_validator(mode="after")
    def _sample_le_population(self) -> EvolutionStrategyConfig:
        if self.sample_size > self.population:
            raise ValueError("sample_size must be <= population")
        return self


class OptunaStrategyConfig(_Section):
    """An Optuna sampler over the space's genes (needs the `optuna` package)."""

    name: Literal["optuna"] = "optuna"
    sampler: Literal["tpe", "nsga2", "random"] = Field(
        "tpe", description="`tpe` (multivariate TPE), `nsga2` or `random`."
    )
    population: int = Field(50, ge=2, description="Population size of `nsga2`.")


class NashStrategyConfig(_Section):
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


StrategyConfig = Annotated[
    RandomStrategyConfig | EvolutionStrategyConfig | OptunaStrategyConfig | NashStrategyConfig,
    Field(discriminator="name"),
]


# ------------------------------------------------------------------------ estimator
class TrainEstimatorConfig(_Section):
    """Real training: SGD + momentum with SGDR (cosine annealing, warm restarts)."""

    name: Literal["train"] = "train"
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


class TableColumn(_Section):
    """A metric read from a table column, times ``scale`` (e.g. millions -> count: 1e6)."""

    column: str = Field(description="Column name in the table.")
    scale: float = Field(1.0, description="Multiplier applied to the column's values.")


def _columns(v: Any) -> Any:
    if isinstance(v, dict):
        return {k: {"column": c} if isinstance(c, str) else c for k, c in v.items()}
    return v


class TabularEstimatorConfig(_Section):
    """Look accuracy up in a table of published results (e.g. NAS-Bench-201): no training."""

    name: Literal["tabular"] = "tabular"
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
        return _columns(v)

    @field_validator("accuracy", "test_accuracy", mode="before")
    @classmethod
    def _column_str(cls, v: Any) -> Any:
        return {"column": v, "scale": 0.01} if isinstance(v, str) else v


EstimatorConfig = Annotated[
    TrainEstimatorConfig | TabularEstimatorConfig, Field(discriminator="name")
]


# --------------------------------------------------------------------------- target
class _TargetBase(_Section):
    provides: list[str] | None = Field(
        None,
        description="Keep only these metrics from this source (default: all it offers); "
        "lets `costs` take, say, SRAM from a device model and latency from a predictor.",
    )


class _MeasuredTarget(_TargetBase):
    warmup: int = Field(10, ge=0, description="Untimed warm-up runs.")
    runs: int = Field(60, ge=5, description="Timed runs in total (split into blocks).")
    blocks: int = Field(
        6,
        ge=1,
        description="Timed blocks; latency is the lowest block median, so a burst of load "
        "that slows some blocks cannot inflate it.",
    )
    batch: int = Field(1, ge=1, description="Batch size of the timed input.")
    retime_tolerance: float = Field(
        0.8,
        ge=0.0,
        description="Before the front is reported, candidates that would join it if their "
        "latency were this much (relative) lower are re-timed.",
    )

    @model_validator(mode="after")
    def _blocks_le_runs(self) -> _MeasuredTarget:
        if self.blocks > self.runs:
            raise ValueError("blocks must be <= runs")
        return self


class CpuOrtTarget(_MeasuredTarget):
    """ONNX Runtime on the host CPU (single-file ONNX export)."""

    name: Literal["cpu-ort"] = "cpu-ort"
    threads: int = Field(1, ge=1, description="ONNX Runtime intra-op threads.")


class CpuTorchTarget(_MeasuredTarget):
    """Eager PyTorch on the host CPU."""

    name: Literal["cpu-torch"] = "cpu-torch"
    threads: int = Field(1, ge=1, description="torch intra-op threads while timing.")


class CudaTorchTarget(_MeasuredTarget):
    """Eager PyTorch on a CUDA GPU, timed with CUDA events."""

    name: Literal["cuda-torch"] = "cuda-torch"
    cuda_graphs: bool = Field(False, description="Capture and replay the forward as a CUDA graph.")


class AnalyticTarget(_TargetBase):
    """No runtime: only analytic costs (params, MACs, memory, model size). Deterministic."""

    name: Literal["analytic"] = "analytic"


class TabularTarget(_TargetBase):
    """Deployment costs looked up in a table of real measurements (e.g. HW-NAS-Bench)."""

    name: Literal["tabular"] = "tabular"
    path: str | None = Field(
        None, description="CSV table (optionally .gz); default: the estimator's table."
    )
    arch_column: str = Field("arch_str", description="Column holding the space's arch key.")
    metrics: dict[str, TableColumn] = Field(
        default_factory=lambda: {"latency_ms": TableColumn(column="pixel3_ms")},
        description="Cost metrics: `name: column` or `{column, scale}`, e.g. `latency_ms: pixel3_ms`.",
    )

    @field_validator("metrics", mode="before")
    @classmethod
    def _metric_columns(cls, v: Any) -> Any:
        return _columns(v)


class PredictorTarget(_TargetBase):
    """Latency from a learned predictor file (`hwnas predictor train`): microseconds a call."""

    name: Literal["predictor"] = "predictor"
    path: str = Field(description="The predictor file written by `hwnas predictor train`.")
    metric: str = Field(
        "latency_ms", description="Metric name the prediction is stored as (e.g. `energy_mj`)."
    )

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        return _known_metric(v)


class DeviceTarget(_TargetBase):
    """Datasheet device model: roofline latency, energy, peak SRAM and flash (docs/devices.md)."""

    name: Literal["device"] = "device"
    spec: str = Field(
        "cortex-m7",
        description="Shipped device (`cortex-m7`, `imx8mp-npu`, `jetson-orin-nano`) or a path "
        "to a spec YAML file.",
    )
    precision: Literal["int8", "fp16", "fp32"] | None = Field(
        None, description="Weight and activation precision; default: the spec's own."
    )
    capacity_constraints: bool = Field(
        True,
        description="Add `peak_sram_bytes <= ` and `flash_bytes <= ` the spec's capacities to "
        "the constraints (unless tighter ones are given), so candidates that cannot fit are "
        "pruned before training.",
    )

    @field_validator("spec")
    @classmethod
    def _spec_loads(cls, v: str) -> str:
        from hwnas.hardware.devices import load_spec, resolve, shipped

        load_spec(v)  # a bad file is an error naming its field
        # a file is kept by absolute path, so the stored study finds it from any directory
        return v if v in shipped() else str(resolve(v))

    @model_validator(mode="after")
    def _precision_offered(self) -> DeviceTarget:
        from hwnas.hardware.devices import load_spec

        if self.precision is not None:
            load_spec(self.spec).check_precision(self.precision)
        return self


def _device_constraints(cfg: ExperimentConfig) -> None:
    """A device's memory capacities become constraints, so misfits are pruned before training."""
    from hwnas.hardware.devices import load_spec

    for src in [cfg.target, *cfg.costs]:
        if not isinstance(src, DeviceTarget) or not src.capacity_constraints:
            continue
        for metric, cap in load_spec(src.spec).capacity().items():
            if src.provides is not None and metric not in src.provides:
                continue
            tighter = any(
                c.metric == metric and c.op in ("<=", "<") and c.value <= cap
                for c in cfg.constraints
            )
            if not tighter:
                cfg.constraints.append(Constraint(metric=metric, op="<=", value=cap))


class LutTarget(_TargetBase):
    """Latency from a per-block lookup table (FBNet style), measured once on a runtime here."""

    name: Literal["lut"] = "lut"
    runtime: Literal["cpu-ort", "cpu-torch", "cuda-torch"] = Field(
        "cpu-ort", description="Runtime the table is measured on (and whose latency it predicts)."
    )
    threads: int = Field(1, ge=1, description="Intra-op threads (CPU runtimes).")
    batch: int = Field(1, ge=1, description="Batch size of the timed input.")
    cuda_graphs: bool = Field(False, description="`cuda-torch`: time forwards as CUDA graphs.")
    warmup: int = Field(20, ge=0, description="Untimed warm-up runs per timed graph.")
    runs: int = Field(300, ge=5, description="Timed runs per graph (split into blocks).")
    blocks: int = Field(
        15, ge=1, description="Timed blocks per graph; an entry is the lowest block median."
    )
    passes: int = Field(
        3,
        ge=1,
        le=20,
        description="Readings of each entry, taken in separate sweeps over the table; the "
        "fastest is kept, so load that slows one sweep does not stick in the table.",
    )
    max_passes: int = Field(
        8,
        ge=1,
        le=50,
        description="More sweeps, up to this many readings, for entries whose two fastest "
        "readings still differ by more than `agreement`.",
    )
    agreement: float = Field(
        0.05, gt=0, description="Relative gap allowed between an entry's two fastest readings."
    )
    quiet_wait: float = Field(
        3.0,
        ge=0,
        description="CPU runtimes: seconds to wait, before a reading, for a quiet moment of a "
        "shared CPU (a canary graph back at its best speed); 0 = never wait.",
    )
    calibration: int = Field(
        12,
        ge=2,
        description="Whole networks measured end to end to fit the fixed overhead and scale.",
    )
    path: str | None = Field(
        None,
        description="Directory of the tables; default `$HWNAS_CACHE/lut` or `~/.cache/hwnas/lut`.",
    )

    @model_validator(mode="after")
    def _consistent(self) -> LutTarget:
        if self.blocks > self.runs:
            raise ValueError("blocks must be <= runs")
        if self.max_passes < self.passes:
            raise ValueError("max_passes must be >= passes")
        return self


COMMAND_PLACEHOLDERS = ("model", "input_shape", "input_name", "batch")


class CommandTarget(_TargetBase):
    """Hardware in the loop through your own command, e.g. `[ssh, board, ./bench, {model}]`."""

    name: Literal["command"] = "command"
    command: list[str] = Field(
        min_length=1,
        description="Argument list run without a shell; placeholders: `{model}` (path of the "
        "candidate's ONNX file), `{input_shape}` (`1,3,32,32`), `{input_name}`, `{batch}`; "
        "`{{` and `}}` are literal braces.",
    )
    regex: str | None = Field(
        None, description="Regex over the command's stdout; its first group is the figure."
    )
    json_key: str | None = Field(
        None, description="Dotted key path into JSON printed on stdout, e.g. `result.mean_ms`."
    )
    metric: str = Field("latency_ms", description="Metric name the figure is stored as.")
    scale: float = Field(
        1.0, gt=0, description="Multiplier to the metric's unit (us -> ms: 0.001)."
    )
    batch: int = Field(1, ge=1, description="Batch size of the exported model's input.")
    timeout: float = Field(120.0, gt=0, description="Seconds one run of the command may take.")
    retries: int = Field(2, ge=0, description="Further attempts after a failed run.")
    backoff: float = Field(0.5, ge=0, description="Seconds before the first retry (doubling).")
    cache: bool = Field(
        True,
        description="Answer a model already measured from the cache (keyed by the graph without "
        "weight values, the command and settings); off if the figure depends on the weights.",
    )
    cache_dir: str | None = Field(None, description="Also keep the cache in this directory.")

    @field_validator("command")
    @classmethod
    def _template(cls, v: list[str]) -> list[str]:
        used = {
            m
            for arg in v
            for m in re.findall(r"\{([A-Za-z_]\w*)\}", arg.replace("{{", "").replace("}}", ""))
        }
        unknown = sorted(used - set(COMMAND_PLACEHOLDERS))
        if unknown:
            raise ValueError(
                f"unknown placeholder {{{unknown[0]}}}; known: "
                + ", ".join(f"{{{p}}}" for p in COMMAND_PLACEHOLDERS)
            )
        if "model" not in used:
            raise ValueError("must pass the model: put {model} in one of the arguments")
        return v

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        return _known_metric(v)

    @model_validator(mode="after")
    def _one_parser(self) -> CommandTarget:
        if (self.regex is None) == (self.json_key is None):
            raise ValueError("give exactly one of regex or json_key")
        if self.regex is not None:
            try:
                groups = re.compile(self.regex).groups
            except re.error as exc:
                raise ValueError(f"regex: {exc}") from None
            if groups < 1:
                raise ValueError("regex: needs a group, e.g. 'latency: ([0-9.]+) ms'")
        return self


class RemoteTarget(_TargetBase):
    """ONNX Runtime on another machine running `hwnas agent serve` (see docs/remote.md)."""

    name: Literal["remote"] = "remote"
    url: str = Field(
        pattern=r"^https?://[^\s/]+", description="Agent address, e.g. `http://board:8765`."
    )
    token: SecretStr | None = Field(None, description="The agent's token (stored masked).")
    token_env: str | None = Field(
        None,
        description="Name of an environment variable holding the token (keeps it out of YAML).",
    )
    warmup: int = Field(10, ge=0, description="Untimed warm-up runs.")
    runs: int = Field(60, ge=5, le=10000, description="Timed runs in total (split into blocks).")
    blocks: int = Field(6, ge=1, description="Timed blocks; latency is the lowest block median.")
    batch: int = Field(1, ge=1, le=1024, description="Batch size of the timed input.")
    threads: int | None = Field(
        None, ge=1, description="ONNX Runtime intra-op threads; default: the agent's `--threads`."
    )
    timeout: float = Field(300.0, gt=0, description="Seconds to wait for one measurement.")
    retries: int = Field(3, ge=0, description="Further attempts after a broken connection.")
    backoff: float = Field(1.0, ge=0, description="Seconds before the first retry (doubling).")
    cache: bool = Field(
        True, description="Answer a model already measured on this agent from the cache."
    )
    cache_dir: str | None = Field(None, description="Also keep the cache in this directory.")

    @model_validator(mode="after")
    def _checks(self) -> RemoteTarget:
        if (self.token is None) == (self.token_env is None):
            raise ValueError("give exactly one of token or token_env")
        if self.blocks > self.runs:
            raise ValueError("blocks must be <= runs")
        return self


TargetConfig = Annotated[
    CpuOrtTarget
    | CpuTorchTarget
    | CudaTorchTarget
    | AnalyticTarget
    | TabularTarget
    | DeviceTarget
    | LutTarget
    | CommandTarget
    | RemoteTarget
    | PredictorTarget,
    Field(discriminator="name"),
]


# ---------------------------------------------------------------- objectives etc.
METRIC_DIRECTIONS: dict[str, Literal["max", "min"]] = {
    "accuracy": "max",
    "latency_ms": "min",
    "params": "min",
    "macs": "min",
    "peak_memory_bytes": "min",
    "model_bytes": "min",
    "model_bytes_int8": "min",
    "train_seconds": "min",
    "energy_mj": "min",
    "peak_sram_bytes": "min",
    "flash_bytes": "min",
}
TRAINED_METRICS = {"accuracy", "train_seconds", "val_loss"}
MEASURED_METRICS = {"latency_ms"}


def _known_metric(v: str) -> str:
    if v not in METRIC_DIRECTIONS:
        raise ValueError(f"unknown metric {v!r}; known: {', '.join(METRIC_DIRECTIONS)}")
    return v


class Objective(_Section):
    """One objective: a metric and whether to maximise or minimise it."""

    metric: str = Field(description="Metric name, e.g. `accuracy`, `latency_ms`, `macs`.")
    direction: Literal["max", "min"] = Field(description="`max` or `min`.")

    _known = field_validator("metric")(lambda v: _known_metric(v))


_CONSTRAINT_RE = re.compile(r"^\s*([A-Za-z_][A-Za-z0-9_]*)\s*(<=|>=|<|>)\s*([-+0-9.eE_]+)\s*$")


class Constraint(_Section):
    """A hard constraint such as ``latency_ms <= 2.0``; violators are pruned."""

    metric: str
    op: Literal["<=", ">=", "<", ">"]
    value: float

    _known = field_validator("metric")(lambda v: _known_metric(v))

    @classmethod
    def parse(cls, text: str) -> Constraint:
        m = _CONSTRAINT_RE.match(text)
        if not m:
            raise ValueError(f"cannot parse constraint {text!r}; expected e.g. 'latency_ms <= 2.0'")
        return cls(metric=m.group(1), op=m.group(2), value=float(m.group(3)))  # type: ignore[arg-type]

    def holds(self, x: float) -> bool:
        return {
            "<=": x <= self.value,
            ">=": x >= self.value,
            "<": x < self.value,
            ">": x > self.value,
        }[self.op]

    def __str__(self) -> str:
        return f"{self.metric} {self.op} {self.value:.12g}"


class BudgetConfig(_Section):
    """When the search stops: distinct evaluations and/or wall-clock minutes."""

    trials: int = Field(60, ge=1, description="Distinct architectures evaluated (duplicates free).")
    minutes: float | None = Field(
        None,
        gt=0,
        description="Stop starting new trials after this many minutes of search (summed over "
        "resumptions: a resumed search gets what is left).",
    )


class ExecutorConfig(_Section):
    """Where trials run. Only the driver asks, tells and writes the store."""

    name: Literal["inprocess", "process"] = Field(
        "inprocess",
        description="`inprocess`: one trial at a time in the driver (reproducible); `process`: "
        "`workers` spawned processes evaluate trials at once (several small nets on one GPU, "
        "or one per core). With evolution or random search the order in which results "
        "arrive then shapes later proposals; NASH waits for each step, so it is unchanged.",
    )
    workers: int = Field(1, ge=1, le=256, description="Trials evaluated at once (`process`).")

    @model_validator(mode="after")
    def _workers_need_processes(self) -> ExecutorConfig:
        if self.name == "inprocess" and self.workers > 1:
            raise ValueError("workers > 1 needs `executor.name: process`")
        return self


_DEFAULT_KINDS = {
    "space": "chain",
    "strategy": "evolution",
    "estimator": "train",
    "target": "cpu-ort",
}


class ExperimentConfig(_Section):
    """A whole experiment. Every key is listed in docs/configuration.md."""

    seed: int = Field(0, ge=0, description="Seed for the strategy, splits and training.")
    device: Literal["cpu", "cuda"] = Field("cpu", description="Where candidates train.")
    budget: BudgetConfig = Field(default_factory=BudgetConfig, description="Budget.")
    data: DataConfig = Field(default_factory=DataConfig, description="Dataset.")
    space: SpaceConfig = Field(default_factory=ChainSpaceConfig, description="Search space.")
    strategy: StrategyConfig = Field(
        default_factory=EvolutionStrategyConfig, description="Search strategy."
    )
    estimator: EstimatorConfig = Field(
        default_factory=TrainEstimatorConfig, description="Performance estimation."
    )
    target: TargetConfig = Field(default_factory=CpuOrtTarget, description="Hardware target.")
    costs: list[TargetConfig] = Field(
        default_factory=list,
        description="Further cost sources after `target`, each a target kind (`name: ...`); a "
        "later source's metric replaces an earlier one's, `provides` picks metrics.",
    )
    objectives: list[Objective] = Field(
        default_factory=lambda: [
            Objective(metric="accuracy", direction="max"),
            Objective(metric="latency_ms", direction="min"),
        ],
        description="Objectives; `metric: max|min` mappings or `{metric, direction}`.",
    )
    constraints: list[Constraint] = Field(
        default_factory=list, description="Hard constraints, e.g. `latency_ms <= 2.0`."
    )
    executor: ExecutorConfig = Field(default_factory=ExecutorConfig, description="Executor.")

    @model_validator(mode="before")
    @classmethod
    def _default_kinds(cls, data: Any) -> Any:
        """A section given without ``name`` is the default kind, so ``--set x.y=1`` works."""
        if isinstance(data, dict):
            for section, kind in _DEFAULT_KINDS.items():
                if isinstance(data.get(section), dict) and "name" not in data[section]:
                    data[section] = {"name": kind, **data[section]}
        return data

    @field_validator("budget", mode="before")
    @classmethod
    def _budget_int(cls, v: Any) -> Any:
        return {"trials": v} if isinstance(v, int) and not isinstance(v, bool) else v

    @field_validator("objectives", mode="before")
    @classmethod
    def _objectives(cls, v: Any) -> Any:
        if isinstance(v, dict):
            v = [{"metric": k, "direction": d} for k, d in v.items()]
        if isinstance(v, list):
            out = []
            for item in v:
                if isinstance(item, str):
                    item = {"metric": item, "direction": METRIC_DIRECTIONS.get(item, "min")}
                elif isinstance(item, dict) and len(item) == 1 and "metric" not in item:
                    ((k, d),) = item.items()
                    item = {"metric": k, "direction": d}
                out.append(item)
            return out
        return v

    @field_validator("constraints", mode="before")
    @classmethod
    def _constraints(cls, v: Any) -> Any:
        if isinstance(v, dict):
            v = [f"{k} <= {val}" for k, val in v.items()]
        if isinstance(v, list):
            return [Constraint.parse(c) if isinstance(c, str) else c for c in v]
        return v

    @model_validator(mode="after")
    def _consistent(self) -> ExperimentConfig:
        if not self.objectives:
            raise ValueError("objectives: need at least one objective")
        names = [o.metric for o in self.objectives]
        if len(set(names)) != len(names):
            raise ValueError("objectives: a metric is listed twice")
        measured = {o.metric for o in self.objectives} | {c.metric for c in self.constraints}
        if "latency_ms" in measured and self.target.name == "analytic" and not self.costs:
            raise ValueError(
                "target: `analytic` measures no latency_ms; pick cpu-ort/cpu-torch/cuda-torch"
            )
        if self.target.name == "tabular":
            if self.target.path is None:
                if self.estimator.name != "tabular":
                    raise ValueError("target.path: required unless the estimator is tabular")
                self.target.path = self.estimator.path
            if self.estimator.name == "tabular":
                produced = {"accuracy", *self.estimator.metrics, *self.target.metrics}
                missing = sorted(measured - produced)
                if missing:
                    raise ValueError(
                        f"objectives/constraints: {', '.join(missing)} not provided by the "
                        "tables (add it to target.metrics or estimator.metrics)"
                    )
        for i, src in enumerate(self.costs):
            if src.name in ("analytic", "tabular"):
                raise ValueError(
                    f"costs.{i}: kind {src.name} cannot be an extra cost source (analytic costs "
                    "come with every built model; use target: tabular for a table)"
                )
        if self.target.provides is not None and self.target.name in (
            "cpu-ort",
            "cpu-torch",
            "cuda-torch",
            "analytic",
            "tabular",
        ):
            raise ValueError(
                f"target.provides: not supported for {self.target.name} (it is for `costs` "
                "entries and model-based kinds)"
            )
        for where, src in [("target", self.target)] + [
            (f"costs.{i}", c) for i, c in enumerate(self.costs)
        ]:
            unknown = [m for m in src.provides or [] if m not in METRIC_DIRECTIONS]
            if unknown:
                raise ValueError(
                    f"{where}.provides: unknown metric {unknown[0]!r}; known: "
                    + ", ".join(METRIC_DIRECTIONS)
                )
        _device_constraints(self)
        if self.target.name == "cuda-torch" and self.device != "cuda":
            self.device = "cuda"
        for c in self.constraints:
            if c.value < 0 or (c.op in ("<", "<=") and c.value == 0 and c.metric != "accuracy"):
                raise ValueError(f"constraints: {c} can never hold")
            if c.metric == "accuracy" and (c.value > 1 or (c.op == ">" and c.value >= 1)):
                raise ValueError(f"constraints: {c} can never hold (accuracy is 0-1)")
        return self

    def to_json_dict(self) -> dict[str, Any]:
        d = self.model_dump(mode="json")
        d["constraints"] = [str(c) for c in self.constraints]
        return d

    def identity(self) -> dict[str, Any]:
        """What makes two runs the same experiment (budget and executor may change on resume)."""
        d = self.to_json_dict()
        d.pop("budget", None)
        d.pop("executor", None)  # the same search may resume with more or fewer workers
        return d


# ------------------------------------------------------------------------- loading
def _format_error(err: ValidationError) -> str:
    e = err.errors()[0]
    loc = ".".join(
        str(p) for p in e["loc"] if not (isinstance(p, str) and p.startswith("function-"))
    )
    # drop discriminator tags pydantic inserts into the location ("space.chain.stem_channels")
    loc = re.sub(
        r"\.(chain|cell|graph|nash|random|evolution|train|tabular|cpu-ort|cpu-torch|cuda-torch|analytic|device|command|remote|lut|fbnet|predictor)\b",
        "",
        loc,
        count=1,  # only the tag: a field may share a kind's name (`command.command`)
    )
    msg = e["msg"]
    if e["type"] == "extra_forbidden":
        msg = "unknown key"
    if e["type"] == "union_tag_invalid":
        msg = msg.replace("Input tag", "unknown name").split(" found using")[0]
    return f"config: {loc or '<root>'}: {msg}" + (
        f" (got {e['input']!r})"
        if e["type"] not in ("extra_forbidden", "missing") and not isinstance(e.get("input"), dict)
        else ""
    )


def _parse_value(text: str) -> Any:
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError:
        return text


_SECTIONS_WITH_NAME = {"data", "space", "strategy", "estimator", "target", "executor"}


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``key.path=value`` overrides; ``space=graph`` means ``space.name=graph``.

    Changing a section's ``name`` drops that section's other keys, which belonged to the old
    kind, unless they are set by later overrides.
    """
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected key.path=value")
        key, _, value = item.partition("=")
        parts = [p for p in key.strip().split(".") if p]
        if not parts:
            raise ConfigError(f"--set {item!r}: empty key")
        if len(parts) == 1 and parts[0] in _SECTIONS_WITH_NAME:
            parts.append("name")
        node: Any = raw
        for p in parts[:-1]:
            if isinstance(node, list):
                try:
                    node = node[int(p)]
                except (ValueError, IndexError) as exc:
                    raise ConfigError(f"--set {item!r}: no list item {p!r}") from exc
                continue
            if not isinstance(node.get(p), dict | list):
                node[p] = {}
            node = node[p]
        leaf = parts[-1]
        val = _parse_value(value)
        if isinstance(node, list):
            try:
                node[int(leaf)] = val
            except (ValueError, IndexError) as exc:
                raise ConfigError(f"--set {item!r}: no list item {leaf!r}") from exc
        else:
            old = node.get("name", _DEFAULT_KINDS.get(parts[0]))
            if leaf == "name" and len(parts) == 2 and old != val:
                node.clear()
            node[leaf] = val
    return raw


def load_config(
    path: str | Path | None = None,
    overrides: list[str] | None = None,
    **top_level: Any,
) -> ExperimentConfig:
    """Read YAML (or the built-in default), apply ``--set`` overrides and validate.

    Raises :class:`ConfigError` with a one-line message on any problem.
    """
    raw: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file not found: {p}")
        try:
            loaded = yaml.safe_load(p.read_text())
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f" line {mark.line + 1}" if mark is not None else ""
            raise ConfigError(f"config {p}:{where} is not valid YAML") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ConfigError(f"config {p}: top level must be a mapping of sections")
        raw = loaded
    raw = apply_overrides(raw, overrides or [])
    for k, v in top_level.items():
        if v is None:
            continue
        if k == "budget":
            b = raw.get("budget")
            raw["budget"] = {**(b if isinstance(b, dict) else {}), "trials": v}
        elif k == "data_path":
            raw.setdefault("data", {})
            if raw["data"].get("name", "digits") == "digits":
                raw["data"]["name"] = "cifar10"
            raw["data"]["path"] = v
        else:
            raw[k] = v
    return validate_config(raw)


def validate_config(raw: dict[str, Any]) -> ExperimentConfig:
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(_format_error(exc)) from None
