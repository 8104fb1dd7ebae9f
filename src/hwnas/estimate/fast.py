"""The fast GPU training recipe (``recipe: fast``): a candidate trained in seconds, not minutes.

What the fast-training literature (Page 2018; Jordan 2024, "94 % on CIFAR-10 in 3.29 seconds")
documents, rewritten for any net of any space:

- the uint8 data stays resident on the device; each batch is gathered, translated (reflect
  padding) and mirrored there in one indexing op, then normalised;
- large batches with a matching rate: linear warm-up then linear decay, Nesterov SGD, decoupled
  weight decay, BatchNorm biases at a higher rate, label smoothing;
- Lookahead: every 5 steps the weights move part-way back to a slow copy, which the net ends on;
- initialisation: convs start as the identity on their first input channels, BatchNorm scales
  stay at 1, and a net with a data-set stem (the fast-CNN space's patch whitening) is set from
  the data before the first step;
- channels-last and bf16 autocast on CUDA.

Each trick is a switch in :class:`~hwnas.estimate.config.FastRecipeConfig`, so
``benchmarks/fast_recipe.py`` can measure what it buys. All random draws come from a CPU
generator, so the same seed gives the same training on the CPU.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, Protocol, runtime_checkable

import torch
from torch import nn
from torch.nn import functional as F

from hwnas.data.base import cutout_batch, fraction_indices
from hwnas.estimate.base import TrainingDiverged, TrainResult
from hwnas.estimate.resume import (
    FROM_START,
    Schedule,
    paused_state,
    restore_optimizer,
    restore_rng,
    seed_of,
)

if TYPE_CHECKING:
    from hwnas.data import Dataset, Split
    from hwnas.estimate.base import Report
    from hwnas.estimate.config import FastRecipeConfig, TrainEstimatorConfig

#: images used to set a data-initialised stem (the covariance of 2x2 patches settles by then)
INIT_SAMPLES = 5000
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@runtime_checkable
class DataInitialised(Protocol):
    """A net with weights set from the training data before training (a whitening stem)."""

    def init_from_data(self, x: torch.Tensor) -> None: ...


# -------------------------------------------------------------------------------- data
class DeviceData:
    """A split's uint8 images on the device, served as normalised, augmented batches."""

    def __init__(self, x: torch.Tensor, y: torch.Tensor, mean: Any, std: Any) -> None:
        self.x, self.y = x, y
        c = x.shape[1]
        dev = x.device
        std_t = torch.tensor(std, dtype=torch.float32, device=dev).view(1, c, 1, 1)
        mean_t = torch.tensor(mean, dtype=torch.float32, device=dev).view(1, c, 1, 1)
        self.scale = 1.0 / (255.0 * std_t)
        self.shift = -mean_t / std_t

    def normalise(self, xb: torch.Tensor) -> torch.Tensor:
        return xb.to(torch.float32).mul_(self.scale).add_(self.shift)

    def crop_flip(
        self, idx: torch.Tensor, oy: torch.Tensor, ox: torch.Tensor, mirror: torch.Tensor, pad: int
    ) -> torch.Tensor:
        """Images ``idx`` shifted by (oy - pad, ox - pad) with reflected borders, mirrored
        where ``mirror``: one gather on the uint8 data."""
        xb = self.x[idx]
        b, c, h, w = xb.shape
        rows = torch.arange(h, device=xb.device)[None, :] + oy[:, None] - pad  # (B, H)
        cols = torch.arange(w, device=xb.device)
        cols = torch.where(mirror[:, None], cols.flip(0)[None, :], cols[None, :])
        cols = cols + ox[:, None] - pad  # (B, W)
        rows = _reflect(rows, h)
        cols = _reflect(cols, w)
        index = (rows[:, :, None] * w + cols[:, None, :]).reshape(b, 1, h * w).expand(b, c, h * w)
        return xb.reshape(b, c, h * w).gather(2, index).reshape(b, c, h, w)


def _reflect(i: torch.Tensor, n: int) -> torch.Tensor:
    """Reflect-pad indexing (…2 1 | 0 1 2 … n-1 | n-2…), valid for shifts below ``n``."""
    i = i.abs()
    return torch.where(i > n - 1, 2 * (n - 1) - i, i)


def _device_data(dataset: Dataset, dev: torch.device, train_on_val: bool) -> DeviceData:
    x, y = dataset.train.to(dev)
    if train_on_val:  # the final training: validation has done its job (selection)
        vx, vy = dataset.val.to(dev)
        x, y = torch.cat([x, vx]), torch.cat([y, vy])
    return DeviceData(x, y, dataset.mean, dataset.std)


def epoch_batches(
    data: DeviceData,
    subset: torch.Tensor,
    fc: FastRecipeConfig,
    epoch: int,
    gen: torch.Generator,
    base_flips: torch.Tensor,
    flip_ok: bool,
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """One epoch of augmented, normalised batches; every draw from ``gen`` on the CPU."""
    dev = data.x.device
    m = len(subset)
    order = subset[torch.randperm(m, generator=gen)]
    pad = fc.translate
    oy = torch.randint(0, 2 * pad + 1, (m,), generator=gen)
    ox = torch.randint(0, 2 * pad + 1, (m,), generator=gen)
    if not flip_ok or fc.flip == "off":
        mirror = torch.zeros(m, dtype=torch.bool)
    elif fc.flip == "alternate":  # each image mirrored every other epoch: no repeats
        mirror = base_flips[order] ^ bool(epoch % 2)
    else:
        mirror = torch.rand(m, generator=gen) < 0.5
    cut = None
    if fc.cutout:
        _, _, h, w = data.x.shape
        cut = (torch.randint(0, h, (m,), generator=gen), torch.randint(0, w, (m,), generator=gen))
    order_d, oy_d, ox_d, mirror_d = (t.to(dev, non_blocking=True) for t in (order, oy, ox, mirror))
    bs = fc.batch_size
    stop = m if m % bs != 1 else m - 1  # a batch of one breaks BatchNorm
    for s in range(0, stop, bs):
        e = min(s + bs, stop)
        bi = order_d[s:e]
        xb = data.crop_flip(bi, oy_d[s:e], ox_d[s:e], mirror_d[s:e], pad)
        xf = data.normalise(xb)
        if cut is not None:
            cy, cx = cut[0][s:e].to(dev), cut[1][s:e].to(dev)
            xf = cutout_batch(xf, cy, cx, fc.cutout)
        yield xf, data.y[bi]


# ------------------------------------------------------------------------------- model
@torch.no_grad()
def prepare_model(model: nn.Module, fc: FastRecipeConfig, sample: torch.Tensor | None) -> None:
    """The initialisation tricks: data-set stem, identity convs, fixed BatchNorm scales."""
    if fc.whiten and sample is not None and isinstance(model, DataInitialised):
        model.init_from_data(sample)
    for mod in model.modules():
        if fc.identity_init and isinstance(mod, nn.Conv2d) and mod.weight.requires_grad:
            k = mod.kernel_size
            if mod.groups == 1 and k[0] == k[1] and k[0] % 2 == 1:
                n = min(mod.in_channels, mod.out_channels)
                nn.init.dirac_(mod.weight[:n])
            elif _grouped_square(mod):  # fastcnn's split convs: the identity, group by group
                nn.init.dirac_(mod.weight, groups=mod.groups)
        if fc.freeze_bn_scale and isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.affine:
            mod.weight.fill_(1.0)
    freeze_bn_scales(model, fc)


def _grouped_square(conv: nn.Conv2d) -> bool:
    """A grouped (not depthwise), channel-keeping k x k conv with k odd and > 1, such as the
    fast-CNN space's split convs; the built-in spaces have no other (their depthwise and
    grouped 1x1 convs keep the initialisation their studies were made with), a user space's
    such convs start as the identity too."""
    k = conv.kernel_size
    square = k[0] == k[1] > 1 and k[0] % 2 == 1
    return square and 1 < conv.groups < conv.in_channels == conv.out_channels


def freeze_bn_scales(model: nn.Module, fc: FastRecipeConfig) -> None:
    """BatchNorm scales are not trained by the recipe (they stay at what they hold)."""
    for mod in model.modules():
        if fc.freeze_bn_scale and isinstance(mod, nn.modules.batchnorm._BatchNorm) and mod.affine:
            mod.weight.requires_grad_(False)


def _optimizer(model: nn.Module, fc: FastRecipeConfig) -> torch.optim.SGD:
    bn_biases: list[nn.Parameter] = []
    others: list[nn.Parameter] = []
    for mod in model.modules():
        for name, p in mod.named_parameters(recurse=False):
            if not p.requires_grad:
                continue
            is_bn = isinstance(mod, nn.modules.batchnorm._BatchNorm)
            (bn_biases if is_bn and name == "bias" else others).append(p)
    lr_b = fc.lr * fc.bias_lr_scale
    # decoupled decay: SGD multiplies weight_decay by the group's rate, so divide it out
    groups = [
        {"params": others, "lr": fc.lr, "weight_decay": fc.weight_decay / fc.lr},
        {"params": bn_biases, "lr": lr_b, "weight_decay": fc.weight_decay / lr_b},
    ]
    groups = [g for g in groups if g["params"]]
    for g in groups:
        g["initial_lr"] = g["lr"]
    return torch.optim.SGD(groups, lr=fc.lr, momentum=fc.momentum, nesterov=fc.momentum > 0)


def lr_factor(step: int, total: int, fc: FastRecipeConfig) -> float:
    """Linear from ``lr_start`` up to 1 over the warm-up share, then down to ``lr_end``."""
    t = step / max(total, 1)
    if t < fc.warmup:
        return fc.lr_start + (1.0 - fc.lr_start) * t / fc.warmup
    return 1.0 + (fc.lr_end - 1.0) * (t - fc.warmup) / max(1.0 - fc.warmup, 1e-9)


class Lookahead:
    """Slow weights (parameters and float buffers) the fast ones are pulled back to."""

    every = 5

    def __init__(self, model: nn.Module) -> None:
        self.pairs = [
            (t, t.detach().clone())
            for t in [*model.parameters(), *model.buffers()]
            if t.is_floating_point()
        ]

    def slow(self) -> list[torch.Tensor]:
        """The slow weights (a paused run keeps them)."""
        return [slow.clone() for _, slow in self.pairs]

    @torch.no_grad()
    def load(self, slow: list[torch.Tensor]) -> None:
        """Slow weights of a paused run."""
        for (_, mine), theirs in zip(self.pairs, slow, strict=True):
            mine.copy_(theirs)

    @torch.no_grad()
    def step(self, decay: float) -> None:
        for fast, slow in self.pairs:
            slow.lerp_(fast.detach(), 1.0 - decay)
            fast.copy_(slow)


# -------------------------------------------------------------------------------- eval
@torch.no_grad()
def logits_tta(model: nn.Module, x: torch.Tensor, views: int) -> torch.Tensor:
    """Logits averaged over ``views``: 1 = as exported, 2 = with the mirror image, 6 = the
    mirror pair at the image and at two 1-pixel diagonal shifts (weights 1/2, 1/4, 1/4)."""
    if views == 1:
        return model(x).float()

    def mirrored(z: torch.Tensor) -> torch.Tensor:
        return 0.5 * (model(z).float() + model(z.flip(-1)).float())

    out = mirrored(x)
    if views == 2:
        return out
    h, w = x.shape[-2:]
    padded = F.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = 0.5 * (mirrored(padded[..., :h, :w]) + mirrored(padded[..., 2:, 2:]))
    return 0.5 * out + 0.5 * shifted


@torch.no_grad()
def evaluate_split(
    model: nn.Module,
    split: Split,
    dataset: Dataset,
    dev: torch.device,
    dtype: str = "bf16",
    views: int = 1,
    batch_size: int = 2000,
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) on ``split`` with the data on ``dev``."""
    x, y = split.to(dev)
    data = DeviceData(x, y, dataset.mean, dataset.std)
    model.eval()
    correct, loss_sum = 0, 0.0
    with autocast(dev, dtype):
        for s in range(0, len(y), batch_size):
            xb = data.normalise(x[s : s + batch_size])
            if dev.type == "cuda":
                xb = xb.contiguous(memory_format=torch.channels_last)
            logits = logits_tta(model, xb, views)
            yb = y[s : s + batch_size]
            loss_sum += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
    n = max(len(y), 1)
    return correct / n, loss_sum / n


def autocast(dev: torch.device, dtype: str) -> Any:
    """Mixed precision in ``dtype`` on CUDA (``fp32``: none); none on the CPU."""
    if dev.type == "cuda" and dtype != "fp32":
        return torch.autocast("cuda", dtype=_DTYPES[dtype])
    return torch.autocast("cpu", enabled=False)


# ------------------------------------------------------------------------------- train
def train_fast(
    model: nn.Module,
    dataset: Dataset,
    cfg: TrainEstimatorConfig,
    *,
    seed: int,
    device: str | torch.device = "cuda",
    flip: bool = True,
    report: Report | None = None,
    train_on_val: bool = False,
    fresh: bool = True,
    schedule: Schedule = FROM_START,
) -> TrainResult:
    """Train ``model`` in place with the fast recipe for ``cfg.epochs`` epochs.

    ``train_seconds`` counts the training steps only (synchronised), not validation;
    ``report`` (a pruner's) gets validation accuracy after every epoch and can stop early.
    ``fresh``: the model is at its initialisation (only then do the initialisation tricks
    apply: on trained weights they would overwrite what was learnt); ``schedule`` places the
    training on a longer schedule and holds a paused run's state to resume.
    """
    fc = cfg.fast
    dev = torch.device(device)
    state = schedule.state
    data_seed = seed_of(seed, state)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(data_seed)
    data = _device_data(dataset, dev, train_on_val)
    subset = fraction_indices(len(data.y), cfg.data_fraction, gen)
    base_flips = torch.rand(len(data.y), generator=gen) < 0.5
    model.to(dev)
    sample_idx = subset[torch.randperm(len(subset), generator=gen)[:INIT_SAMPLES]]
    if fresh:
        prepare_model(model, fc, data.normalise(data.x[sample_idx.to(dev)]))
    else:  # trained weights: only what the recipe keeps fixed stays fixed
        freeze_bn_scales(model, fc)
    restore_rng(gen, state)
    if dev.type == "cuda" and fc.channels_last:
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    opt = _optimizer(model, fc)
    restore_optimizer(opt, state)
    bs = fc.batch_size
    steps_per_epoch = max(1, math.ceil((len(subset) - (len(subset) % bs == 1)) / bs))
    total = schedule.span(cfg.epochs) * steps_per_epoch
    loss_fn = nn.CrossEntropyLoss(label_smoothing=fc.label_smoothing)
    ahead = Lookahead(model) if fc.lookahead else None
    if ahead is not None and state is not None and "lookahead" in state:
        ahead.load(state["lookahead"])
    every_epoch = report is not None or fc.eval_every_epoch
    curve: list[dict[str, float]] = []
    train_s, stopped = 0.0, None
    step = schedule.start_epoch * steps_per_epoch
    pauses = schedule.pauses(cfg.epochs)
    acc, val_loss = 0.0, math.inf
    for epoch in range(cfg.epochs):
        _sync(dev)
        t0 = time.perf_counter()
        model.train()
        loss_sum = torch.zeros((), device=dev)
        seen = 0
        at = schedule.start_epoch + epoch  # the epoch of the whole schedule (mirroring)
        for x, y in epoch_batches(data, subset, fc, at, gen, base_flips, flip):
            if dev.type == "cuda" and fc.channels_last:
                x = x.contiguous(memory_format=torch.channels_last)
            f = lr_factor(step, total, fc)
            for g in opt.param_groups:
                g["lr"] = g["initial_lr"] * f
            with autocast(dev, fc.dtype):
                loss = loss_fn(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            step += 1
            if ahead is not None and step % Lookahead.every == 0:
                ahead.step(fc.lookahead_decay * (step / total) ** 3)
            loss_sum += loss.detach() * len(y)
            seen += len(y)
        last = epoch + 1 == cfg.epochs
        if ahead is not None and last and not pauses:
            ahead.step(1.0)  # end on the slow weights (a pause keeps both, as they are)
        train_loss = float(loss_sum) / max(seen, 1)  # one sync per epoch
        train_s += time.perf_counter() - t0
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"loss became {train_loss} in epoch {epoch + 1}")
        point: dict[str, float] = {"epoch": epoch + 1, "train_loss": train_loss}
        if every_epoch or last:
            acc, val_loss = evaluate_split(model, dataset.val, dataset, dev, fc.dtype)
            point.update(val_loss=val_loss, val_accuracy=acc)
        curve.append(point)
        if (
            report is not None
            and not last
            and report(epoch + 1, {"accuracy": acc, "val_loss": val_loss})
        ):
            stopped = epoch + 1
            break
    kept = None
    if stopped is None and pauses:
        slow = {"lookahead": ahead.slow()} if ahead is not None else {}
        kept = paused_state(opt, data_seed, gen, **slow)
    return TrainResult(acc, val_loss, train_s, curve, stopped, kept)


def _sync(dev: torch.device) -> None:
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
