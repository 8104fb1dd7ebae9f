"""Fidelity: how much of an evaluation a trial gets (epochs, share of the data, resolution).

Typed, on proposals and trials, and part of a trial's identity: a 3-epoch result never
answers a 27-epoch request. ``None`` means "the estimator's default".
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any


@dataclass(frozen=True)
class Fidelity:
    epochs: int | None = None
    data_fraction: float | None = None
    resolution: int | None = None

    def to_dict(self) -> dict[str, Any]:
        """The set fields only, e.g. ``{"epochs": 6}`` (the JSON form in the store)."""
        return {k: v for k, v in asdict(self).items() if v is not None}

    @classmethod
    def from_dict(cls, d: dict[str, Any] | None) -> Fidelity:
        d = d or {}
        unknown = set(d) - {"epochs", "data_fraction", "resolution"}
        if unknown:
            raise ValueError(f"fidelity: unknown field {sorted(unknown)[0]!r}")
        return cls(**d)

    def merged(self, default: Fidelity) -> Fidelity:
        """Each field from ``self`` where set, else from ``default``."""
        return Fidelity(
            *(
                a if a is not None else b
                for a, b in zip(self._tuple(), default._tuple(), strict=True)
            )
        )

    def _tuple(self) -> tuple[Any, ...]:
        return (self.epochs, self.data_fraction, self.resolution)


def trial_key(
    arch_hash: str,
    estimator: str,
    fidelity: Fidelity,
    start: str | None = None,
    recipe: dict[str, Any] | None = None,
) -> str:
    """What makes two evaluations the same: the network, the estimator's identity (name and
    recipe), the fidelity, for a net that goes on from trained weights what it starts from
    (``start``: the parent's key and the morphisms), so a warm start is never answered by a
    run from scratch, nor the other way round, and the recipe overrides that make it another
    evaluation (a rung paused on a longer schedule is not a short training)."""
    parts: list[Any] = [arch_hash, estimator, fidelity.to_dict()]
    if start is not None:  # keys of runs from scratch are unchanged
        parts.append(start)
    if recipe:  # so are those of trials on the estimator's own recipe
        parts.append({"recipe": recipe})
    blob = json.dumps(parts, sort_keys=True)
    return hashlib.sha1(blob.encode()).hexdigest()[:16]
