"""Pausing and resuming one training: what a trainer keeps so that a run stopped after ``k``
of ``n`` scheduled epochs goes on as if it had never stopped.

A rung of a multi-fidelity scheduler with ``schedule: resume`` is such a pause: the trial
trains the first ``k`` epochs of an ``n``-epoch learning-rate schedule and a promotion trains
the rest from its weights. Weights alone are not enough for the resumed run to equal the
uninterrupted one: the optimiser's momentum, the data order and the augmentation draws (the
trainer's generator and its seed) and, for the fast recipe, the lookahead's slow weights go on
too. They are stored beside the trial's weights (``trial_N.resume.pt``) and are only written
for a run whose schedule goes on past its last epoch.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

#: the recipe keys that place a training on a longer schedule (set per trial, not in config)
SCHEDULE_KEYS = ("start_epoch", "schedule_epochs")


@dataclass(frozen=True)
class Schedule:
    """Where a training lies on its learning-rate schedule: it starts ``start_epoch`` epochs
    in, and the schedule spans ``schedule_epochs`` (0: just this training's epochs).
    ``state`` is what the paused run left (None: a run from its initialisation, or a pause
    whose state was not kept, which then goes on with a fresh optimiser and data order)."""

    start_epoch: int = 0
    schedule_epochs: int = 0
    state: dict[str, Any] | None = None

    def span(self, epochs: int) -> int:
        """The schedule's length in epochs for a training of ``epochs`` epochs."""
        return max(self.schedule_epochs, self.start_epoch + epochs)

    def pauses(self, epochs: int) -> bool:
        """The schedule goes on after this training's last epoch."""
        return self.start_epoch + epochs < self.span(epochs)


#: a training from its initialisation over its own epochs (the plain case)
FROM_START = Schedule()


def split_schedule(overrides: dict[str, Any]) -> Schedule:
    """Take the schedule keys out of a trial's recipe overrides (checked: whole epochs >= 0)."""
    values = {}
    for key in SCHEDULE_KEYS:
        v = overrides.pop(key, 0)
        if isinstance(v, bool) or not isinstance(v, int) or v < 0:
            raise ValueError(f"{key} must be a whole number of epochs >= 0, not {v!r}")
        values[key] = v
    return Schedule(values["start_epoch"], values["schedule_epochs"])


def state_path(weights_path: Path) -> Path:
    """Where a paused run's state lies: beside its weights."""
    return weights_path.with_name(f"{weights_path.stem}.resume.pt")


def save_state(weights_path: Path, state: dict[str, Any]) -> None:
    torch.save(_on_cpu(state), state_path(weights_path))


def _on_cpu(value: Any) -> Any:
    """A copy with every tensor on the CPU (a GPU run's momentum loads anywhere)."""
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, dict):
        return {k: _on_cpu(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return type(value)(_on_cpu(v) for v in value)
    return value


def load_state(weights_path: Path | None) -> dict[str, Any] | None:
    """The paused run's state kept beside ``weights_path``; None when there is none."""
    if weights_path is None:
        return None
    path = state_path(weights_path)
    if not path.exists():
        return None
    state: dict[str, Any] = torch.load(path, map_location="cpu", weights_only=True)
    return state


def seed_of(seed: int, state: dict[str, Any] | None) -> int:
    """The seed of the trainer's generator: the paused run's, so that what it drew first (the
    data subset, the fast recipe's mirror pattern) is drawn alike before its state is set."""
    return seed if state is None else int(state["seed"])


def restore_rng(gen: torch.Generator, state: dict[str, Any] | None) -> None:
    """Put the generator and torch's global generator where the paused run left them."""
    if state is not None:
        gen.set_state(state["generator"])
        torch.set_rng_state(state["rng"])


def restore_optimizer(opt: torch.optim.Optimizer, state: dict[str, Any] | None) -> None:
    """The paused run's momentum; the groups' rates stay this run's (its schedule sets them)."""
    if state is not None:
        opt.load_state_dict({**opt.state_dict(), "state": state["optimizer"]})


def paused_state(
    opt: torch.optim.Optimizer, seed: int, gen: torch.Generator, **extra: Any
) -> dict[str, Any]:
    """What a run paused now leaves for its resumption: the optimiser's momentum, the
    generator's seed and place, torch's global generator (and a recipe's ``extra``)."""
    return {
        "optimizer": opt.state_dict()["state"],
        "seed": seed,
        "generator": gen.get_state(),
        "rng": torch.get_rng_state(),
        **extra,
    }


__all__ = [
    "FROM_START",
    "SCHEDULE_KEYS",
    "Schedule",
    "load_state",
    "paused_state",
    "restore_optimizer",
    "restore_rng",
    "save_state",
    "seed_of",
    "split_schedule",
]
