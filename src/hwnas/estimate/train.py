"""Performance estimation by real training.

SGD with Nesterov momentum, weight decay and SGDR (cosine annealing with warm restarts,
Loshchilov & Hutter 2017), stepped every iteration; epochs and the share of the training split
are the fidelity knobs. Seeded so that, on the CPU, the same trial gives the same numbers. On
CUDA, bf16 autocast (AMP) is used when enabled, and trainings long enough to repay compiling
(``compile_epochs``) run through ``torch.compile``. A non-finite loss stops training at once with
:class:`TrainingDiverged`, which the experiment records as a failed trial.
"""

from __future__ import annotations

import contextlib
import hashlib
import itertools
import json
import logging
import math
import time
from collections.abc import Iterator
from dataclasses import replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from hwnas.core.fidelity import Fidelity
from hwnas.data import Dataset, Split, batches
from hwnas.data.base import cutout_batch
from hwnas.estimate.base import (
    Estimate,
    EstimateFailed,
    Estimator,
    Report,
    TrainingDiverged,
    TrainResult,
)
from hwnas.estimate.config import TrainEstimatorConfig
from hwnas.estimate.fast import (
    INIT_SAMPLES,
    DataInitialised,
    DeviceData,
    autocast,
    evaluate_split,
    train_fast,
)
from hwnas.estimate.resume import (
    FROM_START,
    SCHEDULE_KEYS,
    Schedule,
    load_state,
    paused_state,
    restore_optimizer,
    restore_rng,
    save_state,
    seed_of,
    split_schedule,
)

if TYPE_CHECKING:
    from pathlib import Path

    from hwnas.hardware.base import Candidate

log = logging.getLogger("hwnas")


#: training batches a short training's BatchNorm statistics are recomputed on
RECALIBRATION_BATCHES = 50


@contextlib.contextmanager
def batchnorm_recalibration(model: nn.Module) -> Iterator[None]:
    """Inside, ``model`` is in training mode with every BatchNorm's running statistics reset
    to a cumulative average of the forwards made there; after, the momenta and the mode are
    as they were. A short training's and a supernet path's statistics are recomputed so."""
    bns = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    momenta = [m.momentum for m in bns]
    was_training = model.training
    try:
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average
        model.train()
        yield
    finally:
        for m, mom in zip(bns, momenta, strict=True):
            m.momentum = mom
        model.train(was_training)


@torch.no_grad()
def recalibrate_batchnorm(
    model: nn.Module,
    split: Split,
    dataset: Dataset,
    device: torch.device,
    batch_size: int,
    seed: int,
) -> None:
    """Recompute every BatchNorm's running statistics as exact averages over up to
    :data:`RECALIBRATION_BATCHES` training batches (no augmentation, its own generator: the
    training's draws are untouched). After a few dozen steps the running averages still
    mix the statistics of weights long gone, and the net reads near chance in eval mode."""
    if not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules()):
        return  # nothing to recompute: no forwards
    gen = torch.Generator().manual_seed(seed)
    drawn = batches(
        split,
        batch_size,
        mean=dataset.mean,
        std=dataset.std,
        shuffle=True,
        augment=False,
        generator=gen,
        device=device,
    )
    with batchnorm_recalibration(model):
        for x, _ in itertools.islice(drawn, RECALIBRATION_BATCHES):
            model(x)


@torch.no_grad()
def evaluate(
    model: nn.Module,
    split: Split,
    dataset: Dataset,
    device: torch.device,
    batch_size: int = 512,
    amp: bool = True,
) -> tuple[float, float]:
    """(accuracy, mean cross-entropy) of ``model`` on ``split``."""
    model.eval()
    correct, loss_sum, n = 0, 0.0, 0
    for x, y in batches(
        split,
        batch_size,
        mean=dataset.mean,
        std=dataset.std,
        shuffle=False,
        augment=False,
        generator=None,
        device=device,
    ):
        with autocast(device, "bf16" if amp else "fp32"):
            logits = model(x)
        logits = logits.float()
        loss_sum += float(nn.functional.cross_entropy(logits, y, reduction="sum"))
        correct += int((logits.argmax(1) == y).sum())
        n += len(y)
    return correct / max(n, 1), loss_sum / max(n, 1)


def train(
    model: nn.Module,
    dataset: Dataset,
    cfg: TrainEstimatorConfig,
    *,
    seed: int,
    device: str | torch.device = "cpu",
    batch_size: int = 64,
    augment: bool = False,
    flip: bool = True,
    report: Report | None = None,
    train_on_val: bool = False,
    fresh: bool = True,
    schedule: Schedule = FROM_START,
) -> TrainResult:
    """Train ``model`` in place on ``dataset.train`` (and ``val`` with ``train_on_val``);
    report validation accuracy per epoch (``report`` returning True stops the training after
    that epoch). ``fresh``: the model is at its initialisation, not trained weights going on
    (only then is a data-set stem set from data); ``schedule`` places the training on a longer
    learning-rate schedule and holds a paused run's state to resume."""
    dev = torch.device(device)
    if fresh and isinstance(model, DataInitialised):  # a data-set stem is part of the net
        head = DeviceData(dataset.train.x, dataset.train.y, dataset.mean, dataset.std)
        model.init_from_data(head.normalise(dataset.train.x[:INIT_SAMPLES]))
    train_split = dataset.train
    if train_on_val:
        train_split = Split(
            torch.cat([dataset.train.x, dataset.val.x]), torch.cat([dataset.train.y, dataset.val.y])
        )
    state = schedule.state
    data_seed = seed_of(seed, state)
    torch.manual_seed(seed)
    gen = torch.Generator().manual_seed(data_seed)
    restore_rng(gen, state)
    model.to(dev)
    if dev.type == "cuda":  # cuDNN's fast depthwise/bf16 kernels want NHWC
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    decay = [p for n, p in model.named_parameters() if p.ndim > 1]
    no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
    opt = torch.optim.SGD(
        [
            {"params": decay, "weight_decay": cfg.weight_decay},
            {"params": no_decay, "weight_decay": 0.0},
        ],
        lr=cfg.lr,
        momentum=cfg.momentum,
        nesterov=cfg.momentum > 0,
    )
    n_train = max(1, int(len(train_split.y) * cfg.data_fraction))
    steps_per_epoch = max(1, math.ceil(n_train / batch_size))
    t0_steps = (cfg.restart_epochs or schedule.span(cfg.epochs)) * steps_per_epoch
    sched = torch.optim.lr_scheduler.CosineAnnealingWarmRestarts(
        opt, T_0=t0_steps, T_mult=cfg.restart_mult, eta_min=cfg.lr_min
    )
    restore_optimizer(opt, state)
    if schedule.start_epoch:  # the rates of a run that never paused
        sched.step(schedule.start_epoch * steps_per_epoch)
    loss_fn = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    net: nn.Module = model  # trained and evaluated through ``net``; weights stay in ``model``
    if cfg.compile_epochs and cfg.epochs >= cfg.compile_epochs:
        net = torch.compile(model, mode=cfg.compile_mode)  # type: ignore[assignment]
    curve: list[dict[str, float]] = []
    start = time.perf_counter()
    acc, val_loss = 0.0, math.inf
    stopped = None
    for epoch in range(cfg.epochs):
        net.train()
        loss_sum, seen = torch.zeros((), device=dev), 0
        for x, y in batches(
            train_split,
            batch_size,
            mean=dataset.mean,
            std=dataset.std,
            shuffle=True,
            augment=augment,
            flip=flip,
            generator=gen,
            device=dev,
            fraction=cfg.data_fraction,
        ):
            if cfg.cutout:  # centres drawn on the CPU: the same squares on every device
                b, _, h, w = x.shape
                cy = torch.randint(0, h, (b,), generator=gen).to(dev, non_blocking=True)
                cx = torch.randint(0, w, (b,), generator=gen).to(dev, non_blocking=True)
                x = cutout_batch(x, cy, cx, cfg.cutout)
            with autocast(dev, "bf16" if cfg.amp else "fp32"):
                loss = loss_fn(net(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach() * len(y)
            seen += len(y)
        train_loss = float(loss_sum) / max(seen, 1)  # one sync per epoch, not per step
        if not math.isfinite(train_loss):
            raise TrainingDiverged(f"loss became {train_loss} in epoch {epoch + 1}")
        done = (schedule.start_epoch + epoch + 1) * steps_per_epoch
        if done < cfg.bn_recalibration_steps:
            # the data seed: a paused training goes on under another trial's seed
            recalibrate_batchnorm(net, train_split, dataset, dev, batch_size, data_seed)
        acc, val_loss = evaluate(net, dataset.val, dataset, dev, amp=cfg.amp)
        curve.append(
            {
                "epoch": epoch + 1,
                "train_loss": train_loss,
                "val_loss": val_loss,
                "val_accuracy": acc,
            }
        )
        last = epoch + 1 == cfg.epochs
        if (
            report is not None
            and not last
            and report(epoch + 1, {"accuracy": acc, "val_loss": val_loss})
        ):
            stopped = epoch + 1
            break
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    kept = None
    if stopped is None and schedule.pauses(cfg.epochs):
        kept = paused_state(opt, data_seed, gen)
    return TrainResult(acc, val_loss, time.perf_counter() - start, curve, stopped, kept)


class TrainEstimator(Estimator):
    """Real training (the ``train`` estimator): fidelity is epochs and the share of the data.

    Two recipes: ``sgdr`` (generic, any device) and ``fast`` (:mod:`hwnas.estimate.fast`);
    ``auto`` picks fast for images on CUDA when the space's nets are made for it (fastcnn). A proposal may set ``train_on_val`` (the final
    training of a chosen net, on training + validation data) and, for sgdr, rates and cutout.
    """

    recipe_fields = frozenset({"lr", "lr_min", "cutout", "train_on_val", *SCHEDULE_KEYS})

    def __init__(self, cfg: TrainEstimatorConfig, task: Any = None) -> None:
        super().__init__(cfg, task)
        if cfg.threads:
            torch.set_num_threads(cfg.threads)

    @property
    def recipe(self) -> str:
        """The recipe in use: ``auto`` resolved against the task's device, input size and
        whether the space's nets are made for the fast recipe (only then is it the default:
        it trains airbench-like nets, not MBConv chains)."""
        if self.cfg.recipe != "auto":
            return str(self.cfg.recipe)
        ds = self.task.dataset
        image = ds is not None and min(ds.input_shape[1:]) >= 16
        cuda = str(self.task.device).startswith("cuda")
        return "fast" if cuda and image and self.task.fast_nets else "sgdr"

    def warnings(self) -> list[str]:
        """A mini-batch so large against the training split that an epoch is a step or
        three: the nets then learn next to nothing in any epochs a search can afford (the
        fast recipe's 1024 on digits' ~1 150 training images: one step an epoch)."""
        ds = self.task.dataset
        if ds is None:
            return []
        fast = self.recipe == "fast"
        bs = self.cfg.fast.batch_size if fast else self.task.batch_size
        steps = -(-len(ds.train) // max(1, bs))  # both recipes train the last, short batch
        if steps >= 4:
            return []
        key = "estimator.fast.batch_size" if fast else "data.batch_size"
        return [
            f"{key} {bs} gives {steps} training step(s) per epoch on {len(ds.train)} training "
            f"images, too few to learn from; set {key} to {max(8, len(ds.train) // 10)} or less"
        ]

    def identity(self) -> str:
        """The recipe that trains, not how it was asked for: ``auto`` resolved, and a sgdr
        trial keyed as before the fast recipe existed (studies from then resume)."""
        skip = {*self._fidelity_keys(), "recipe", "fast", "tta_views"}
        default = type(self.cfg).model_fields["bn_recalibration_steps"].default
        if self.cfg.bn_recalibration_steps == default:  # studies begun before the key keep
            skip.add("bn_recalibration_steps")  # their keys (their short trials read
            # without it, the longer ones as now)
        recipe = self.cfg.model_dump(mode="json", exclude=skip)
        if self.recipe == "fast":
            recipe = {"recipe": "fast", "fast": self.cfg.fast.model_dump(mode="json"), **recipe}
        blob = json.dumps(recipe, sort_keys=True)
        return f"{self.name}:{hashlib.sha1(blob.encode()).hexdigest()[:10]}"

    def default_fidelity(self) -> Fidelity:
        return Fidelity(epochs=self.cfg.epochs, data_fraction=self.cfg.data_fraction)

    def fidelity(self, requested: Fidelity | None = None) -> Fidelity:
        f = super().fidelity(requested)
        if f.resolution is not None:
            raise ValueError("the train estimator has no resolution fidelity")
        # the whole split is the plain case: {"epochs": 6}, not {"epochs": 6, "data_fraction": 1}
        return Fidelity(f.epochs, None if f.data_fraction == 1.0 else f.data_fraction)

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
        task = self.task
        assert cand.model is not None and task.dataset is not None
        unknown = set(recipe or {}) - self.recipe_fields
        if unknown:
            raise ValueError(f"train: a proposal cannot set {sorted(unknown)[0]!r}")
        f = self.fidelity(fidelity)
        overrides = dict(recipe or {})
        on_val = bool(overrides.pop("train_on_val", False))
        schedule = split_schedule(overrides)
        if schedule.start_epoch:  # a paused run goes on: its optimiser and draws too
            state = load_state(start)
            if state is None:
                log.warning(
                    "train: no paused state beside %s; going on %d epochs into the schedule "
                    "with a fresh optimiser and data order",
                    start,
                    schedule.start_epoch,
                )
            schedule = replace(schedule, state=state)
        # validated like the config: a proposal's lr of -1 is an error, not a silent NaN
        cfg = TrainEstimatorConfig.model_validate(
            {
                **self.cfg.model_dump(),
                **overrides,
                "epochs": f.epochs,
                "data_fraction": f.data_fraction or 1.0,
            }
        )
        common: dict[str, Any] = {
            "seed": seed,
            "device": task.device,
            "flip": task.flip,
            "report": report,
            "train_on_val": on_val,
            "fresh": start is None,
            "schedule": schedule,
        }
        try:
            if self.recipe == "fast":
                result = train_fast(cand.model, task.dataset, cfg, **common)
            else:
                result = train(
                    cand.model,
                    task.dataset,
                    cfg,
                    batch_size=task.batch_size,
                    augment=task.augment,
                    **common,
                )
        except TrainingDiverged as exc:
            raise EstimateFailed(f"diverged: {exc}") from None
        except torch.cuda.OutOfMemoryError:
            torch.cuda.empty_cache()
            raise EstimateFailed("out of memory") from None
        metrics = {
            "accuracy": result.accuracy,
            "val_loss": result.val_loss,
            "train_seconds": result.train_seconds,
            "epochs": len(result.curve),
        }
        if weights_path is not None:
            weights_path.parent.mkdir(parents=True, exist_ok=True)
            state = {k: v.detach().cpu() for k, v in cand.model.state_dict().items()}
            torch.save(state, weights_path)
            if result.resume_state is not None:
                save_state(weights_path, result.resume_state)
        return Estimate(metrics, result.curve, result.stopped_at_epoch)

    def test(self, cand: Candidate, weights_path: Path) -> dict[str, float]:
        """``test_accuracy``: one view, one pass, the model as exported. With ``tta_views``,
        ``test_accuracy_tta`` and ``tta_views`` besides (its latency is views x one pass)."""
        dataset = self.task.dataset
        if cand.model is None or dataset is None or not weights_path.exists():
            return {}
        cand.model.load_state_dict(torch.load(weights_path, map_location="cpu", weights_only=True))
        dev = torch.device(self.task.device)
        model = cand.model.to(dev)
        dtype = self.cfg.fast.dtype if self.recipe == "fast" else "bf16"
        if not self.cfg.amp and self.recipe != "fast":
            dtype = "fp32"
        acc, _ = evaluate_split(model, dataset.test, dataset, dev, dtype)
        out = {"test_accuracy": acc}
        if self.cfg.tta_views:
            tta, _ = evaluate_split(model, dataset.test, dataset, dev, dtype, self.cfg.tta_views)
            out.update(test_accuracy_tta=tta, tta_views=float(self.cfg.tta_views))
        return out
