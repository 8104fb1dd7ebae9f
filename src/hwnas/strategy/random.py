"""Random search: the baseline every other strategy must beat."""

from __future__ import annotations

from hwnas.strategy.base import Proposal, Strategy


class RandomSearch(Strategy):
    name = "random"

    def ask(self) -> Proposal:
        # a degenerate arch, or one whose known cost breaks a constraint, is drawn again
        arch = self.feasible_draw(lambda: self.space.sample(self.rng), self.ruled_out)
        return Proposal(arch, info={"op": "sample"})

    def weighs_known_costs(self) -> bool:
        return self.constraints_known()
