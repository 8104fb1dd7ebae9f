"""Config sections of the built-in cost sources (`target` and `costs` entries).

Each kind is registered with its factory, ``factory(section) -> CostModel``. Torch-free.
"""

from __future__ import annotations

import re
from typing import Any, ClassVar, Literal

from pydantic import Field, PrivateAttr, SecretStr, field_validator, model_validator

from hwnas.core.config import KindConfig, Section
from hwnas.core.metrics import base_name, check_metric
from hwnas.core.registry import cost_models


class TableColumn(Section):
    """A metric read from a table column, times ``scale`` (e.g. millions -> count: 1e6)."""

    column: str = Field(description="Column name in the table.")
    scale: float = Field(1.0, description="Multiplier applied to the column's values.")


def table_columns(v: Any) -> Any:
    """``name: column`` shorthand -> ``name: {column}``."""
    if isinstance(v, dict):
        return {k: {"column": c} if isinstance(c, str) else c for k, c in v.items()}
    return v


class CostModelConfig(KindConfig):
    """What every cost source (`target` and each `costs` entry) accepts."""

    #: candidates must be built as torch modules for this source (not for a table)
    needs_model: ClassVar[bool] = True
    #: its figures are readings a latency predictor can learn from (not tables or predictions)
    learnable: ClassVar[bool] = True
    #: may be an entry of `costs` (analytic costs and tables come with the run already)
    extra_source: ClassVar[bool] = True
    #: `provides` makes sense (model-based kinds that offer several metrics)
    selectable: ClassVar[bool] = True

    provides: list[str] | None = Field(
        None,
        description="Keep only these metrics from this source (default: all it offers); "
        "lets `costs` take, say, SRAM from a device model and latency from a predictor.",
    )
    label: str | None = Field(
        None,
        pattern=r"^[A-Za-z0-9_.-]+$",
        description="Store this source's metrics as `metric@label` (e.g. `latency_ms@cuda-torch` "
        "beside the target's `latency_ms`), usable in objectives and constraints.",
    )

    #: the device the run must train on for this target (a GPU runtime); None = any
    device: ClassVar[str | None] = None
    #: where the source is written (`target`, `costs.1`), for errors about its settings
    _key: str = PrivateAttr("target")

    def place(self, key: str) -> None:
        """Say where the config holds this source (the experiment's config does, for each)."""
        self._key = key

    def produces(self) -> set[str] | None:
        """Metrics this source can give (before `provides`); None when unknown in advance."""
        return None

    def complete(self, estimator: Any) -> None:
        """Fill settings that default to the estimator's (a table target's path)."""

    def as_lut(self) -> dict[str, Any] | None:
        """The lookup-table settings (`target: lut`) that predict this runtime; None when
        there is no runtime here to measure a table on."""
        return None

    def capacities(self) -> dict[str, float]:
        """Hard limits of the hardware (e.g. SRAM), added to the constraints."""
        return {}

    def metric_names(self) -> set[str] | None:
        """What this source stores, after `provides` and `label`; None when unknown."""
        made = self.produces()
        if made is None and self.provides is None:
            return None
        names = set(self.provides) if self.provides is not None else set(made or ())
        return {f"{m}@{self.label}" if self.label else m for m in names}


class MeasuredTargetConfig(CostModelConfig):
    """A runtime timed on this machine."""

    selectable: ClassVar[bool] = False

    def produces(self) -> set[str] | None:
        return {"latency_ms", "latency_spread"}

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
    def _blocks_le_runs(self) -> MeasuredTargetConfig:
        if self.blocks > self.runs:
            raise ValueError("blocks must be <= runs")
        return self


@cost_models.register("cpu-ort", factory="hwnas.hardware.targets:cpu_ort")
class CpuOrtTarget(MeasuredTargetConfig):
    """ONNX Runtime on the host CPU (single-file ONNX export)."""

    name: Literal["cpu-ort"] = "cpu-ort"
    threads: int = Field(1, ge=1, description="ONNX Runtime intra-op threads.")

    def as_lut(self) -> dict[str, Any] | None:
        return {"runtime": self.name, "threads": self.threads, "batch": self.batch}


@cost_models.register("cpu-torch", factory="hwnas.hardware.targets:cpu_torch")
class CpuTorchTarget(MeasuredTargetConfig):
    """Eager PyTorch on the host CPU."""

    name: Literal["cpu-torch"] = "cpu-torch"
    threads: int = Field(1, ge=1, description="torch intra-op threads while timing.")

    def as_lut(self) -> dict[str, Any] | None:
        return {"runtime": self.name, "threads": self.threads, "batch": self.batch}


@cost_models.register("cuda-torch", factory="hwnas.hardware.targets:cuda_torch")
class CudaTorchTarget(MeasuredTargetConfig):
    """Eager PyTorch on a CUDA GPU, timed with CUDA events."""

    name: Literal["cuda-torch"] = "cuda-torch"
    device: ClassVar[str | None] = "cuda"
    cuda_graphs: bool = Field(False, description="Capture and replay the forward as a CUDA graph.")

    def as_lut(self) -> dict[str, Any] | None:
        return {"runtime": self.name, "batch": self.batch, "cuda_graphs": self.cuda_graphs}


@cost_models.register("analytic", factory="hwnas.hardware.targets:AnalyticCostModel")
class AnalyticTarget(CostModelConfig):
    """No runtime: only analytic costs (params, MACs, memory, model size). Deterministic."""

    name: Literal["analytic"] = "analytic"
    learnable: ClassVar[bool] = False
    extra_source: ClassVar[bool] = False
    selectable: ClassVar[bool] = False

    def produces(self) -> set[str] | None:
        return set()  # the analytic costs come with every built model, whatever the target


@cost_models.register("tabular", factory="hwnas.hardware.tabular:TableCostModel")
class TabularTarget(CostModelConfig):
    """Deployment costs looked up in a table of real measurements (e.g. HW-NAS-Bench)."""

    name: Literal["tabular"] = "tabular"
    learnable: ClassVar[bool] = False
    needs_model: ClassVar[bool] = False
    extra_source: ClassVar[bool] = False
    selectable: ClassVar[bool] = False
    path: str | None = Field(
        None, description="CSV table (optionally .gz); default: the estimator's table."
    )
    arch_column: str = Field("arch_str", description="Column holding the space's arch key.")
    #: the key an error about the table's file names: the user set the estimator's path
    _path_key: str = PrivateAttr("target.path")
    metrics: dict[str, TableColumn] = Field(
        default_factory=lambda: {"latency_ms": TableColumn(column="pixel3_ms")},
        description="Cost metrics: `name: column` or `{column, scale}`, e.g. `latency_ms: pixel3_ms`.",
    )

    @field_validator("metrics", mode="before")
    @classmethod
    def _metric_columns(cls, v: Any) -> Any:
        return table_columns(v)

    def produces(self) -> set[str] | None:
        return set(self.metrics)

    def complete(self, estimator: Any) -> None:
        table = getattr(estimator, "path", None) if hasattr(estimator, "arch_column") else None
        if self.path is None:
            if table is None:
                raise ValueError("target.path: required unless the estimator is tabular")
            self.path = table
        if self.path == table:  # filled from it, here or before the config was stored
            self._path_key = "estimator.path"

    @property
    def path_key(self) -> str:
        return self._path_key


@cost_models.register("predictor", factory="hwnas.hardware.predictor:from_config")
class PredictorTarget(CostModelConfig):
    """Latency from a learned predictor file (`hwnas predictor train`): microseconds a call."""

    name: Literal["predictor"] = "predictor"
    learnable: ClassVar[bool] = False

    def produces(self) -> set[str] | None:
        return {self.metric}

    path: str = Field(description="The predictor file written by `hwnas predictor train`.")
    metric: str = Field(
        "latency_ms", description="Metric name the prediction is stored as (e.g. `energy_mj`)."
    )

    @field_validator("metric")
    @classmethod
    def _metric(cls, v: str) -> str:
        return check_metric(v)


@cost_models.register("device", factory="hwnas.hardware.device:DeviceCostModel")
class DeviceTarget(CostModelConfig):
    """Datasheet device model: roofline latency, energy, peak SRAM and flash (docs/devices.md)."""

    name: Literal["device"] = "device"

    def produces(self) -> set[str] | None:
        # what DeviceEstimate.metrics gives: without it a bound on `peak_sram_bytes@M7` (a
        # label's typo) or on a metric the model does not give went unchecked, silently
        return {"latency_ms", "energy_mj", "peak_sram_bytes", "flash_bytes"}

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

    def capacities(self) -> dict[str, float]:
        from hwnas.hardware.devices import load_spec

        if not self.capacity_constraints:
            return {}
        return load_spec(self.spec).capacity()

    @model_validator(mode="after")
    def _precision_offered(self) -> DeviceTarget:
        from hwnas.hardware.devices import load_spec

        if self.precision is not None:
            load_spec(self.spec).check_precision(self.precision)
        return self


@cost_models.register("lut", factory="hwnas.hardware.lut:LutCostModel")
class LutTarget(CostModelConfig):
    """Latency from a per-block lookup table (FBNet style), measured once on a runtime here
    or on a board (`runtime: board`: each block sent to a `remote` agent or a `command`)."""

    name: Literal["lut"] = "lut"

    def produces(self) -> set[str] | None:
        return {"latency_ms"}

    runtime: Literal["cpu-ort", "cpu-torch", "cuda-torch", "board"] = Field(
        "cpu-ort",
        description="Runtime the table is measured on (and whose latency it predicts); "
        "`board`: the board named by `board`, each block sent to it as an ONNX file.",
    )
    board: RemoteTarget | CommandTarget | None = Field(
        None,
        discriminator="name",
        description="`runtime: board`: the `remote` or `command` target that times each block "
        "(a `target: remote` or `command` run builds its table there without this section).",
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
        description="Whole networks measured end to end to fit the fixed overhead, the scale "
        "and what a block costs in a network: a third random, a third spread over the number "
        "of blocks, a third over MACs (with fewer than 4, no per-block term).",
    )
    path: str | None = Field(
        None,
        description="Directory of the tables; default `$HWNAS_CACHE/lut` or `~/.cache/hwnas/lut`.",
    )

    def place(self, key: str) -> None:
        super().place(key)
        if self.board is not None:  # its token or command is written under this section
            self.board.place(f"{key}.board")

    @model_validator(mode="after")
    def _consistent(self) -> LutTarget:
        if self.blocks > self.runs:
            raise ValueError("blocks must be <= runs")
        if self.max_passes < self.passes:
            raise ValueError("max_passes must be >= passes")
        if (self.runtime == "board") != (self.board is not None):
            raise ValueError("runtime board and a board section go together")
        if isinstance(self.board, CommandTarget) and base_name(self.board.metric) != "latency_ms":
            raise ValueError(
                f"board: a lookup table holds latency; the command measures {self.board.metric}"
            )
        if self.board is not None and self.board.batch != self.batch:
            raise ValueError(
                f"batch {self.batch} and board.batch {self.board.batch}: the table is timed "
                "at its board's batch; set both alike"
            )
        return self


COMMAND_PLACEHOLDERS = ("model", "input_shape", "input_name", "batch")


@cost_models.register("command", factory="hwnas.hardware.remote:CommandCostModel")
class CommandTarget(CostModelConfig):
    """Hardware in the loop through your own command, e.g. `[ssh, board, ./bench, {model}]`."""

    name: Literal["command"] = "command"

    def produces(self) -> set[str] | None:
        return {self.metric}

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
    unreachable_exit_codes: list[int] = Field(
        [255],
        description="Exit codes that mean the board did not answer (ssh's 255: no connection); "
        "a run that ends so after every retry is the board's failure, not the net's: 3 such "
        "trials in a row stop the search, and a resume runs them again (a timeout is the net's).",
    )
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
        return check_metric(v)

    def as_lut(self) -> dict[str, Any] | None:
        """Each block sent to the command, when it measures latency."""
        if base_name(self.metric) != "latency_ms":
            return None
        return {"runtime": "board", "board": self, "batch": self.batch, "quiet_wait": 0.0}

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


@cost_models.register("remote", factory="hwnas.hardware.remote:RemoteCostModel")
class RemoteTarget(CostModelConfig):
    """ONNX Runtime on another machine running `hwnas agent serve` (see docs/remote.md)."""

    name: Literal["remote"] = "remote"

    def produces(self) -> set[str] | None:
        return {"latency_ms", "latency_spread"}

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

    def as_lut(self) -> dict[str, Any] | None:
        """Each block sent to the agent."""
        return {"runtime": "board", "board": self, "batch": self.batch, "quiet_wait": 0.0}

    @model_validator(mode="after")
    def _checks(self) -> RemoteTarget:
        if (self.token is None) == (self.token_env is None):
            raise ValueError("give exactly one of token or token_env")
        if self.blocks > self.runs:
            raise ValueError("blocks must be <= runs")
        return self


LutTarget.model_rebuild()  # its board names the two targets defined after it
