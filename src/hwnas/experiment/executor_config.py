"""Config sections of the executors, registered with their factories (torch-free).

An executor's factory is called as ``factory(section, evaluator, run_config, threads)``: the
in-process one uses the driver's evaluator, a pool rebuilds one per worker from the run's
config.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from hwnas.core.config import KindConfig
from hwnas.core.registry import executors


@executors.register("inprocess", factory="hwnas.experiment.executor:InProcessExecutor.from_config")
@executors.register("process", factory="hwnas.experiment.executor:ProcessExecutor.from_config")
class ExecutorConfig(KindConfig):
    """Where trials run. Only the driver asks, tells and writes the store."""

    name: Literal["inprocess", "process"] = Field(
        "inprocess",
        description="`inprocess`: one trial at a time in the driver (reproducible); `process`: "
        "`workers` spawned processes evaluate trials at once (several small nets on one GPU, "
        "or one per core). With evolution or random search the order in which results "
        "arrive then shapes later proposals; NASH waits for each step, so it is unchanged.",
    )
    workers: int = Field(1, ge=1, le=256, description="Trials evaluated at once (`process`).")
    retries: int = Field(
        2,
        ge=0,
        description="`process`: re-runs of a trial whose worker process died (the first beside "
        "the others, later ones alone); a trial is recorded as failed only once its worker "
        "died while it ran alone and its re-runs are spent.",
    )

    @model_validator(mode="after")
    def _workers_need_processes(self) -> ExecutorConfig:
        if self.name == "inprocess" and self.workers > 1:
            raise ValueError("workers > 1 needs `executor.name: process`")
        return self


@executors.register("ray", factory="hwnas.experiment.executor_ray:RayExecutor.from_config")
class RayExecutorConfig(KindConfig):
    """Trials as Ray tasks on a local Ray instance or a cluster (`pip install 'hwnas[ray]'`).
    The driver alone writes the study; trained weights come back in each result, so no
    shared filesystem is needed. A worker or node lost mid-trial: Ray runs the trial again
    elsewhere (`retries`), then it is recorded as failed with the reason."""

    name: Literal["ray"] = "ray"
    workers: int = Field(
        1, ge=1, le=4096, description="Trials in flight at once (`--workers` sets it)."
    )
    address: str = Field(
        "local",
        description="`local`: start a Ray instance on this machine for the run; `auto`: join "
        "the cluster this machine belongs to (`ray start --head` / `--address`); "
        "`ray://host:10001`: a remote cluster through Ray Client.",
    )
    cpus: float = Field(1.0, gt=0, description="CPUs per trial (also its torch threads).")
    gpus: float = Field(
        0.0, ge=0, description="GPUs per trial; a fraction lets several small trials share one."
    )
    resources: dict[str, float] = Field(
        default_factory=dict,
        description="Custom resources per trial, e.g. `{board: 1}` so a trial runs on the host "
        "whose Ray node offers the board (`ray start --resources '{\"board\": 1}'`).",
    )
    retries: int = Field(
        2, ge=0, description="Re-runs of a trial whose worker process or node died."
    )
    local_cpus: int | None = Field(
        None, ge=1, description="`address: local`: CPUs the instance offers (default: all)."
    )
    local_gpus: int | None = Field(
        None, ge=0, description="`address: local`: GPUs the instance offers (default: all)."
    )

    @model_validator(mode="after")
    def _address(self) -> RayExecutorConfig:
        a = self.address
        if a not in ("local", "auto") and not a.startswith("ray://") and ":" not in a:
            raise ValueError(
                f"executor.address {a!r}: use local, auto, ray://host:port or host:port"
            )
        return self
