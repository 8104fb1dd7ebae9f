"""Scoring an arch with the weights it inherits from a trained supernet (SPOS).

A path's weights were trained inside the supernet, but its BatchNorm statistics were
gathered over every path at once, so they fit none: before scoring, the statistics of the
path are recomputed on a few training batches (a cumulative average, no weight changes) --
Guo et al.'s BatchNorm recalibration. The same recalibration and validation batches serve
every arch, so two archs' scores differ only by their weights. Seconds per arch where a
stand-alone training takes minutes; the validation split ranks, the test split is never used.
"""

from __future__ import annotations

from itertools import islice
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.data import Dataset, batches
from hwnas.estimate.fast import autocast
from hwnas.estimate.train import batchnorm_recalibration


class InheritedScorer:
    """Validation accuracy and loss of any path of ``net`` (a supernet) after recalibrating
    its BatchNorm statistics on ``bn_batches`` training batches."""

    def __init__(
        self,
        net: nn.Module,
        data: Dataset,
        device: torch.device | str,
        *,
        batch_size: int,
        bn_batches: int,
        eval_images: int,
        seed: int,
        precision: str = "bf16",
        finetune_steps: int = 0,
        finetune_lr: float = 0.02,
    ) -> None:
        self.net, self.dev = net, torch.device(device)
        self.precision = precision if self.dev.type == "cuda" else "fp32"
        self.finetune_lr = finetune_lr
        gen = torch.Generator().manual_seed(seed)

        def epoch(split: Any, shuffle: bool, tune: bool = False) -> Any:
            return batches(
                split,
                batch_size,
                mean=data.mean,
                std=data.std,
                shuffle=shuffle,
                augment=False,
                generator=gen,
                device=self.dev,
                drop_last=tune,  # a short last batch would weigh like a full step
            )

        recal = epoch(data.train, True)
        self.recal = [b for _, b in zip(range(bn_batches), recal, strict=False)]
        # the same fine-tuning batches for every arch, drawn once (epochs as needed)
        self.tune: list[tuple[torch.Tensor, torch.Tensor]] = []
        while len(self.tune) < finetune_steps:
            more = list(islice(epoch(data.train, True, tune=True), finetune_steps - len(self.tune)))
            if not more:  # fewer training images than one batch
                break
            self.tune += more
        val = data.val
        if 0 < eval_images < len(val):
            val = type(val)(val.x[:eval_images], val.y[:eval_images])
        self.val = list(epoch(val, False))

    def _forward(self, x: torch.Tensor, path: list[Any]) -> torch.Tensor:
        if self.dev.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.dev, self.precision):
            return self.net(x, path).float()  # type: ignore[no-any-return]

    def score(self, picks: list[int]) -> dict[str, float]:
        """``accuracy`` and ``val_loss`` of the arch picking ``picks``, inherited weights
        (after ``finetune_steps`` steps of its path, undone afterwards)."""
        path: list[Any] = [(i, None) for i in picks]
        if not self.tune:
            return self._scored(path)
        kept = {k: v.detach().clone() for k, v in self.net.state_dict().items()}
        try:
            self._finetune(path)
            return self._scored(path)
        finally:
            self.net.load_state_dict(kept)

    def _finetune(self, path: list[Any]) -> None:
        """SGD along ``path`` alone: the ops it does not pick get no gradient, so no step."""
        self.net.train()
        opt = torch.optim.SGD(self.net.parameters(), lr=self.finetune_lr, momentum=0.9)
        for x, y in self.tune:
            loss = F.cross_entropy(self._forward(x, path), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()

    @torch.no_grad()
    def _scored(self, path: list[Any]) -> dict[str, float]:
        with batchnorm_recalibration(self.net):  # statistics of this path alone
            for x, _ in self.recal:
                self._forward(x, path)
        self.net.eval()
        correct, loss, n = 0, 0.0, 0
        for x, y in self.val:
            out = self._forward(x, path)
            loss += float(F.cross_entropy(out, y, reduction="sum"))
            correct += int((out.argmax(1) == y).sum())
            n += len(y)
        return {"accuracy": correct / max(n, 1), "val_loss": loss / max(n, 1)}
