"""What the search loop hands a one-shot strategy: everything it needs, nothing of the loop."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from hwnas.core.constraints import Constraint
    from hwnas.estimate.base import Task
    from hwnas.hardware.config import DeviceTarget, LutTarget
    from hwnas.oneshot.config import SupernetConfig
    from hwnas.space.base import Space
    from hwnas.space.capabilities import Shape


@dataclass
class SupernetKit:
    """Data and device (``task``), the space, the ``supernet`` section, a directory for
    checkpoints, the run's constraints (a cost target may default from one), the lookup-table
    settings of each runtime a latency metric may name (``latency_ms`` the target's,
    ``latency_ms@label`` a cost source's), the datasheet device models a latency metric may
    name instead (``devices``: each block is estimated, nothing is timed), ``save(key, value)`` to keep JSON in the study
    (theta's history), ``price(arch, metric=None)``, the run's cost sources on one arch (with
    ``metric``, only the sources that may give it), ``report``, how far each phase got, and
    ``warn``, which says at once what will make the search miss what it asked for (a
    supernet trains for hours before the first trial starts)."""

    task: Task
    space: Space
    input_shape: Shape
    num_classes: int
    cfg: SupernetConfig
    directory: Path
    seed: int
    constraints: list[Constraint] = field(default_factory=list)
    luts: dict[str, LutTarget] = field(default_factory=dict)
    devices: dict[str, DeviceTarget] = field(default_factory=dict)
    #: latency metrics whose source is a lookup table itself (`target: lut`): its figure of a
    #: net is the table's prediction, so a derived net has nothing to be measured against
    tabled: set[str] = field(default_factory=set)
    save: Callable[[str, Any], None] = lambda key, value: None
    progress: bool = False
    price: Callable[..., dict[str, Any]] = lambda arch, metric=None: {}
    #: ``report(phase, done, total)`` after each epoch or scored arch (the CLI's progress bars)
    report: Callable[[str, int, int], None] | None = None
    #: ``warn(text)`` before the supernet trains (the CLI prints it; the strategy's
    #: ``warnings()`` give it again, for a caller that took none)
    warn: Callable[[str], None] | None = None
