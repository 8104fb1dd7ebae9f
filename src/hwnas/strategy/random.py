"""Random search: the baseline every other strategy must beat."""

from __future__ import annotations

from hwnas.strategy.base import Proposal, Strategy


class RandomSearch(Strategy):
    name = "random"

    def ask(self) -> Proposal:
        return Proposal(self.space.sample(self.rng), info={"op": "sample"})
