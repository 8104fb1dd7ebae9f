"""``estimator: zero_cost``: rank archs by a zero-cost proxy of their untrained net.

The batch is drawn once (``data_seed``) from the training split and shared by every arch,
so two scores differ only by the nets. The net is the trial's own initialisation (its seed),
as a trained net would start. A score that is not finite (synflow overflowing on a very deep
net) is a failed trial, not a silently huge one.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from hwnas.core.fidelity import Fidelity
from hwnas.data import batches
from hwnas.estimate.base import Estimate, EstimateFailed, Estimator, Report, Task
from hwnas.estimate.proxies import PROXIES

if TYPE_CHECKING:
    from hwnas.hardware.base import Candidate


class ZeroCostEstimator(Estimator):
    """The proxy ``cfg.proxy`` on one fixed batch, as metric ``zc_<proxy>``."""

    def __init__(self, cfg: Any, task: Task | None = None) -> None:
        super().__init__(cfg, task)
        self._batch: tuple[torch.Tensor, torch.Tensor] | None = None

    def batch(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._batch is None:
            data = self.task.dataset
            if data is None:
                raise EstimateFailed("estimator: zero_cost needs data")
            gen = torch.Generator().manual_seed(self.cfg.data_seed)
            self._batch = next(
                iter(
                    batches(
                        data.train,
                        min(self.cfg.batch_size, len(data.train)),
                        mean=data.mean,
                        std=data.std,
                        shuffle=True,
                        augment=False,
                        generator=gen,
                    )
                )
            )
        return self._batch

    def estimate(
        self,
        cand: Candidate,
        fidelity: Fidelity,
        *,
        seed: int,
        report: Report | None = None,
        weights_path: Path | None = None,
        recipe: dict[str, Any] | None = None,
        start: Path | None = None,
    ) -> Estimate:
        if cand.model is None:
            raise EstimateFailed("estimator: zero_cost needs the built net")
        x, y = self.batch()
        try:
            score = PROXIES[self.cfg.proxy](cand.model, x, y)
        except (RuntimeError, ValueError) as exc:
            raise EstimateFailed(f"{self.cfg.proxy}: {exc}") from None
        if not math.isfinite(score):
            raise EstimateFailed(f"{self.cfg.proxy} is not finite ({score}) for this net")
        metric = f"zc_{self.cfg.proxy}"
        return Estimate({metric: score}, [{"epoch": 0, metric: score}])
