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

    @model_validator(mode="after")
    def _workers_need_processes(self) -> ExecutorConfig:
        if self.name == "inprocess" and self.workers > 1:
            raise ValueError("workers > 1 needs `executor.name: process`")
        return self
