"""Training a supernet once and learning architecture weights per setting on it.

Every step draws a path from theta with Gumbel-softmax noise at temperature tau: with
``mixture: soft`` (FBNet) each position's output is the sample-weighted sum of all its
candidates; with ``hard`` (GDAS) only the sampled candidate runs, times its straight-through
gate. Soft is the default because it trains from scratch: on the 22-position FBNet space,
uniform single paths left the loss at chance (2.30 on CIFAR-10 after 10 epochs, on digits
after 15), while the soft mixture at tau = 5 learned at once (digits: 2.26 -> 0.23 in 10).

Warm-up: the shared weights w train alone, theta at zero, tau at ``tau_start`` (every op
trained, none favoured; the checkpoint is what another study reuses). Search, per setting:
theta starts at zero; each epoch (with ``alternate``) w takes one pass over its data along
paths drawn from theta, then theta one pass over its own data, with the resource loss the
exact expectation ``E_theta[C]`` (and, with ``beta_decay``, beta-DARTS's regulariser); tau
anneals exponentially to ``tau_end`` (or, with ``tau_schedule: linear``, per epoch as GDAS
does; ``interleave`` alternates w and theta batch by batch as DARTS and GDAS do). Every epoch
ends with a checkpoint, so an interrupted search goes on from the last finished epoch with the
same random state.
"""

from __future__ import annotations

import copy
import logging
import math
import os
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, cast

import torch
import torch.nn.functional as F
from torch import nn

from hwnas.core.errors import gist
from hwnas.data import Split, batches
from hwnas.estimate.fast import autocast
from hwnas.oneshot.costs import NO_COST, ChoiceCosts
from hwnas.oneshot.graphs import GraphedSteps
from hwnas.oneshot.kit import SupernetKit
from hwnas.oneshot.losses import Setting, beta_decay_term, expected_cost, total_loss
from hwnas.space.capabilities import Supernet

log = logging.getLogger("hwnas")

#: draws of a warm-up path before a degenerate one is taken as it is (a space of nothing else)
_REDRAWS = 100


class SupernetDiverged(RuntimeError):
    """A non-finite loss while training the supernet."""


@dataclass
class SettingResult:
    """Theta's probabilities at the end of one setting and their history per epoch."""

    setting: Setting
    probs: list[list[float]]
    history: list[dict[str, Any]] = field(default_factory=list)


def _save(obj: Any, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def fingerprint(kit: SupernetKit) -> dict[str, Any]:
    """What a warm-up checkpoint must match to be reused: space, input, classes, and plain
    BatchNorm in the ops where used (its weights lack the affine ones: they fit no other)."""
    fp = fingerprint_of(kit.space, kit.input_shape, kit.num_classes)
    if kit.cfg.op_batchnorm == "plain":  # absent means affine: older checkpoints still match
        fp["op_batchnorm"] = "plain"
    return fp


def fingerprint_of(space: Any, input_shape: Any, num_classes: int) -> dict[str, Any]:
    cfg = getattr(space, "cfg", None)
    return {
        "space": space.name,
        "space_config": cfg.model_dump(mode="json") if cfg is not None else None,
        "input_shape": list(input_shape),
        "num_classes": num_classes,
    }


def checkpoint_file(where: str, path: Path) -> Path:
    """The warm-up checkpoint a ``weights`` key names; a directory (a study's, or its
    ``supernet/``) is named as one, with the warm-up inside it where there is one (it was
    "does not exist")."""
    if path.is_dir():
        inner = [p for p in (path / "warmup.pt", path / "supernet" / "warmup.pt") if p.is_file()]
        hint = f": name {inner[0]}" if inner else "; name a study's supernet/warmup.pt"
        raise FileNotFoundError(f"{where}: {path} is a directory{hint}")
    if not path.is_file():
        raise FileNotFoundError(f"{where}: {path} does not exist")
    return path


def not_a_warm_up(where: str, path: Path, state: Any) -> str | None:
    """Why a loaded checkpoint is not a warm-up, where it is a search setting's (it was
    "trained for another space")."""
    if isinstance(state, dict) and "theta" in state and "fingerprint" not in state:
        warm = path.parent / "warmup.pt"
        name = f"name {warm}" if warm.is_file() else "name a study's supernet/warmup.pt"
        return f"{where}: {path} is a search setting's checkpoint (theta), not the warm-up: {name}"
    return None


def _load_warm(kit: SupernetKit) -> dict[str, Any] | None:
    """The warm-up checkpoint to start from (``supernet.weights`` or this study's), checked
    against this run; None when there is none yet."""
    own = kit.directory / "warmup.pt"
    if kit.cfg.weights:
        source = checkpoint_file("supernet.weights", Path(kit.cfg.weights).expanduser())
    elif own.is_file():
        source = own
    else:
        return None
    try:
        state = torch.load(source, map_location="cpu")
    except Exception as exc:  # a foreign or truncated file
        raise ValueError(
            f"supernet.weights: {source} is not a supernet checkpoint ({gist(exc)})"
        ) from None
    if why := not_a_warm_up("supernet.weights", source, state):
        raise ValueError(why)
    if not isinstance(state, dict) or state.get("fingerprint") != fingerprint(kit):
        raise ValueError(
            f"supernet.weights: {source} was trained for another space, input or class count,"
            " or with the other supernet.op_batchnorm"
        )
    return state


def check_weights(kit: SupernetKit) -> None:
    """Refuse a ``supernet.weights`` that is missing or another problem's (before any write)."""
    if kit.cfg.weights:
        _load_warm(kit)


def plain_op_norms(net: nn.Module) -> int:
    """Give every BatchNorm inside a position's candidate ops plain batch statistics: no
    learned scale or shift, no running averages (the DARTS and GDAS search setting); the
    fixed layers around the positions keep theirs. Returns how many were replaced."""
    from hwnas.space.blocks import Choice

    n = 0
    for position in [m for m in net.modules() if isinstance(m, Choice)]:
        for parent in list(position.modules()):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.BatchNorm2d) and child.affine:
                    plain = nn.BatchNorm2d(
                        child.num_features, eps=child.eps, affine=False, track_running_stats=False
                    )
                    setattr(parent, name, plain)
                    n += 1
    return n


class SupernetSearch:
    """One supernet on one task: ``warm_up`` once, then ``search`` per setting."""

    def __init__(self, kit: SupernetKit, costs: ChoiceCosts) -> None:
        self.kit, self.cfg, self.costs = kit, kit.cfg, costs
        assert kit.task.dataset is not None
        self.data = kit.task.dataset
        self.dev = torch.device(kit.task.device)
        self.bs = self.cfg.batch_size or kit.task.batch_size
        self.dir = kit.directory
        self.dir.mkdir(parents=True, exist_ok=True)
        gen = torch.Generator().manual_seed(kit.seed)
        n = len(self.data.train)
        order = torch.randperm(n, generator=gen)
        k = max(1, round(n * self.cfg.theta_fraction))
        tr = self.data.train
        self.theta_split = Split(tr.x[order[:k]], tr.y[order[:k]])
        self.w_split = Split(tr.x[order[k:]], tr.y[order[k:]])
        torch.manual_seed(kit.seed)
        self.net: nn.Module = kit.space.supernet(kit.input_shape, kit.num_classes)  # type: ignore[attr-defined]
        if self.cfg.op_batchnorm == "plain":
            plain_op_norms(self.net)
        self.net.to(self.dev)
        if self.dev.type == "cuda":
            self.net.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        self.choices: list[int] = [len(c) for c in kit.space.choices()]  # type: ignore[attr-defined]
        self.precision = kit.cfg.precision if self.dev.type == "cuda" else "fp32"
        self.trained_precision: str = self.precision  # of the weights: a reused supernet's own
        self.graphs: GraphedSteps | None = None
        #: wall seconds of this study's warm-up epochs, over every call that resumed them,
        #: and how many epochs they are (a checkpoint from before times were kept has none)
        self.warmup_seconds, self.warmup_timed = 0.0, 0
        if self.cfg.cuda_graphs and self.dev.type == "cuda":
            if self.cfg.mixture == "hard":
                log.info("supernet.cuda_graphs: hard steps run another path each: eager")
            else:
                self.graphs = GraphedSteps(self.net, self.precision)

    # ------------------------------------------------------------- plumbing
    def _epoch(self, split: Split, gen: torch.Generator) -> Any:
        return batches(
            split,
            self.bs,
            mean=self.data.mean,
            std=self.data.std,
            shuffle=True,
            augment=self.kit.task.augment,
            generator=gen,
            device=self.dev,
            drop_last=len(split) >= self.bs,
            flip=self.kit.task.flip,
        )

    def _steps(self, split: Split) -> int:
        return max(1, len(split) // self.bs)

    def _forward(self, x: torch.Tensor, path: list[tuple[int, Any]]) -> torch.Tensor:
        if self.dev.type == "cuda":
            x = x.contiguous(memory_format=torch.channels_last)
        with autocast(self.dev, self.precision):
            return self.net(x, path).float()

    def _tau(self, step: int, steps: int, epoch: int, epochs: int) -> float:
        """The temperature after ``step`` of ``steps`` theta steps, in ``epoch`` (from 0) of
        ``epochs``: see ``supernet.tau_schedule``."""
        c = self.cfg
        if c.tau_schedule == "linear":
            return float(c.tau_start - (c.tau_start - c.tau_end) * epoch / max(epochs - 1, 1))
        return float(c.tau_start * (c.tau_end / c.tau_start) ** (step / max(steps - 1, 1)))

    def _route(self, theta: list[torch.Tensor], tau: float) -> list[Any]:
        """A path drawn from ``theta`` at temperature ``tau`` (Gumbel noise from the CPU's
        generator: the same draws on any device); the weights or gates cross to the device
        by a differentiable copy."""
        if self.cfg.mixture != "hard":
            return [w.to(self.dev) for w in self._mixture(theta, tau)]
        gates = [F.gumbel_softmax(t, tau=tau, hard=True) for t in theta]
        picks = [int(g.argmax()) for g in gates]
        return [(i, g[i].to(self.dev)) for i, g in zip(picks, gates, strict=True)]

    def _live_route(self, theta: list[torch.Tensor], tau: float) -> list[Any]:
        """A warm-up path, drawn again while it is a net the space calls degenerate (an
        NB201 cell whose `none` edges cut its input from its output: 2.2 % of uniform draws
        train nothing, output zeros, and no strategy ever proposes them)."""
        route = self._route(theta, tau)
        if self.cfg.mixture != "hard":
            return route
        space = cast(Supernet, self.kit.space)  # a supernet's space decomposes by choice
        for _ in range(_REDRAWS):
            if not self.kit.space.degenerate(space.from_choices([i for i, _ in route])):
                break
            route = self._route(theta, tau)
        return route

    def _mixture(self, theta: list[torch.Tensor], tau: float) -> list[torch.Tensor]:
        """The soft mixtures' weights on the CPU (differentiable in theta)."""
        if self.cfg.mixture == "softmax":
            return [t.softmax(0) for t in theta]
        return [F.gumbel_softmax(t, tau=tau) for t in theta]

    def _theta_ce(
        self, x: torch.Tensor, y: torch.Tensor, theta: list[torch.Tensor], tau: float
    ) -> torch.Tensor:
        """The CE of a theta step along a mixture drawn from ``theta``, differentiable in
        theta, w frozen. Replayed as a CUDA graph, the graph gives the CE's gradient with
        respect to the mixture weights on the GPU, and the chain rule back to theta runs on
        the CPU (a surrogate whose value is the CE and whose gradient is that product)."""
        if self.graphs is None:
            self.net.requires_grad_(False)  # w is only differentiated through
            try:
                return F.cross_entropy(self._forward(x, self._route(theta, tau)), y)
            finally:
                self.net.requires_grad_(True)
        probs = self._mixture(theta, tau)
        ce, grads = self.graphs.theta_grads(x, y, [p.detach().to(self.dev) for p in probs])
        surrogate = sum(
            ((p * g.cpu()).sum() for p, g in zip(probs, grads, strict=True)),
            torch.zeros(()),
        )
        return surrogate - surrogate.detach() + ce.cpu()

    @staticmethod
    def _check(loss: torch.Tensor, what: str) -> None:
        if not torch.isfinite(loss):
            raise SupernetDiverged(f"supernet {what}: the loss became {float(loss.detach())}")

    def _w_optimiser(self, lr: float) -> torch.optim.SGD:
        return torch.optim.SGD(
            self.net.parameters(),
            lr=lr,
            momentum=0.9,
            nesterov=True,
            weight_decay=self.cfg.w_weight_decay,
        )

    def _w_step(
        self,
        opt: torch.optim.SGD,
        sched: Any,
        x: torch.Tensor,
        y: torch.Tensor,
        route: list[Any],
        what: str,
    ) -> float:
        """One SGD step of w along ``route``; the step's loss."""
        if self.graphs is not None:  # forward and backward replayed: w's grads written
            loss = self.graphs.w_grads(x, y, route)
        else:
            loss = F.cross_entropy(self._forward(x, route), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
        self._check(loss, what)
        if self.cfg.w_grad_clip is not None:
            nn.utils.clip_grad_norm_(self.net.parameters(), self.cfg.w_grad_clip)
        opt.step()
        sched.step()
        return float(loss.detach())

    # --------------------------------------------------------------- warm-up
    def warm_up(self, report: Any = None) -> None:
        """Train w with theta at zero (a uniform mixture, or uniform single paths with
        ``mixture: hard``) for ``supernet.epochs``, or load ``supernet.weights``."""
        path = self.dir / "warmup.pt"
        fp = fingerprint(self.kit)
        state = _load_warm(self.kit)
        if state is not None and self.cfg.weights:  # another study's supernet: reuse as is
            self.net.load_state_dict(state["net"])
            self.warm = copy.deepcopy(state["net"])
            # a checkpoint from before says nothing: scored as this run asks, as before
            self.trained_precision = str(state.get("precision", self.precision))
            return
        epochs, start = self.cfg.epochs, 0
        steps = self._steps(self.w_split) * max(epochs, 1)
        unfinished = state is not None and state.get("epoch", 0) < epochs
        if unfinished and state is not None and state.get("steps", steps) != steps:
            # its cosine was planned over other steps: resumed so, the learning rate would
            # leap from near 0 back up mid-run (a loss that rose again on resuming)
            raise ValueError(
                f"supernet: {path} was planned for {state['steps']} warm-up steps (epochs x "
                f"batches), this run for {steps}: keep supernet.epochs, the batch size "
                "(supernet.batch_size or data.batch_size) and the data's split, or start in a "
                "fresh --out"
            )
        opt = self._w_optimiser(self.cfg.w_lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, steps) / steps))
        )
        gen = torch.Generator().manual_seed(self.kit.seed + 1)
        torch.manual_seed(self.kit.seed + 2)  # the paths' Gumbel noise
        if state is not None:
            self.net.load_state_dict(state["net"])
            start = state["epoch"]
            if "opt" in state:  # a run without warm-up saves its initial weights alone
                self.warmup_seconds = float(state.get("seconds", 0.0))
                self.warmup_timed = int(state.get("timed", 0))
                opt.load_state_dict(state["opt"])
                sched.load_state_dict(state["sched"])
                gen.set_state(state["gen"])
                torch.set_rng_state(state["torch_rng"])
        uniform = [torch.zeros(k) for k in self.choices]
        self.net.train()
        for epoch in range(start, epochs):
            total, n, t0 = 0.0, 0, time.perf_counter()
            lr = opt.param_groups[0]["lr"]
            for x, y in self._epoch(self.w_split, gen):
                with torch.no_grad():
                    route = self._live_route(uniform, self.cfg.tau_start)
                total += self._w_step(opt, sched, x, y, route, "warm-up")
                n += 1
            took = time.perf_counter() - t0
            self.warmup_seconds += took
            self.warmup_timed += 1
            _save(
                {
                    "epoch": epoch + 1,
                    "net": self.net.state_dict(),
                    "opt": opt.state_dict(),
                    "sched": sched.state_dict(),
                    "gen": gen.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "fingerprint": fp,
                    "precision": self.precision,  # what its scores are computed in
                    "seconds": self.warmup_seconds,
                    "timed": self.warmup_timed,
                    "steps": steps,
                },
                path,
            )
            log.info(
                "supernet warm-up epoch %d/%d: loss %.4f (lr %.3g, %.1f s)",
                epoch + 1,
                epochs,
                total / max(n, 1),
                lr,
                took,
            )
            if report:
                report("supernet warm-up", epoch + 1, epochs)
        if state is None and epochs == 0:
            _save(
                {
                    "epoch": 0,
                    "net": self.net.state_dict(),
                    "fingerprint": fp,
                    "precision": self.precision,
                },
                path,
            )
        self.warm = copy.deepcopy(self.net.state_dict())

    def warmup_cost(self) -> dict[str, Any]:
        """For the study's summary: the warm-up's epochs, how many of them were timed (not
        those done before checkpoints kept times) and their wall seconds; or that its
        weights came from another study (``supernet.weights``), whose cost is not this one's."""
        if self.cfg.weights:
            return {"reused": str(self.cfg.weights)}
        return {
            "epochs": self.cfg.epochs,
            "epochs_timed": self.warmup_timed,
            "seconds": round(self.warmup_seconds, 3),
        }

    # ---------------------------------------------------------------- search
    def search(self, index: int, setting: Setting, report: Any = None) -> SettingResult:
        """Learn theta for one setting from the warm-up weights; resumes from its checkpoint."""
        ckpt = self.dir / f"setting-{index}.pt"
        epochs = self.cfg.search_epochs
        self.net.load_state_dict(self.warm)
        # theta and the cost table stay on the CPU (tiny): their random draws are the CPU's,
        # the same on any device (:meth:`_route` copies the weights over, differentiably)
        theta = [torch.zeros(k, requires_grad=True) for k in self.choices]
        table = [torch.tensor(row) for row in self.costs.table]
        ref, cheapest = self.costs.uniform(), self.costs.cheapest()
        opt_t = torch.optim.Adam(
            theta,
            lr=self.cfg.theta_lr,
            betas=(self.cfg.theta_beta1, 0.999),
            weight_decay=self.cfg.theta_weight_decay,
        )
        steps_w = self._steps(self.w_split) * epochs
        steps_t = self._steps(self.theta_split) * epochs
        if self.cfg.alternate and self.cfg.interleave:  # steps in pairs: the shorter split's
            steps_w = steps_t = min(steps_w, steps_t)
        # w fine-tunes a warmed-up supernet gently, but trains at full rate from scratch
        # (GDAS, DARTS: no warm-up) -- a fifth of the rate left GDAS's CE near chance
        warmed = self.cfg.epochs > 0 or bool(self.cfg.weights)
        opt_w = self._w_optimiser(self.cfg.w_lr / 5 if warmed else self.cfg.w_lr)
        sched = torch.optim.lr_scheduler.LambdaLR(
            opt_w, lambda t: 0.5 * (1 + math.cos(math.pi * min(t, steps_w) / steps_w))
        )
        gen = torch.Generator().manual_seed(self.kit.seed + 10 + index)
        torch.manual_seed(self.kit.seed + 100 + index)  # Gumbel noise
        t_step, start, history = 0, 0, []
        beta = float(self.cfg.beta_decay or 0.0)
        state = torch.load(ckpt, map_location="cpu") if ckpt.exists() else None
        # what theta trains against: a bound only moves the fix-up after deriving
        trained = replace(setting, bound=False).to_json()
        same = {"setting": trained, "beta_decay": beta}  # else: start afresh
        if state is not None and all(state.get(k, 0.0) == v for k, v in same.items()):
            self.net.load_state_dict(state["net"])
            with torch.no_grad():
                for t, v in zip(theta, state["theta"], strict=True):
                    t.copy_(v)
            opt_t.load_state_dict(state["opt_t"])
            opt_w.load_state_dict(state["opt_w"])
            sched.load_state_dict(state["sched"])
            gen.set_state(state["gen"])
            torch.set_rng_state(state["torch_rng"])
            t_step, start, history = state["t_step"], state["epoch"], state["history"]
        what_w = f"search ({setting.label()}), w step"

        def theta_step(x: torch.Tensor, y: torch.Tensor, tau: float, epoch: int) -> float:
            """One Adam step of theta on (x, y) along a path drawn at ``tau``; its CE."""
            ce = self._theta_ce(x, y, theta, tau)  # w frozen: its graph holds theta alone
            cost = expected_cost([t.softmax(0) for t in theta], table, self.costs.fixed)
            loss = total_loss(ce, cost, setting, ref, cheapest)
            if beta:  # beta-DARTS: its weight rises linearly from 0 over the search
                loss = loss + beta * epoch / epochs * beta_decay_term(theta)
            self._check(loss, f"search ({setting.label()}), theta step")
            opt_t.zero_grad(set_to_none=True)
            loss.backward()
            opt_t.step()
            return float(ce.detach())

        self.net.train()
        for epoch in range(start, epochs):
            ce_sum, n, t0 = 0.0, 0, time.perf_counter()
            tau = self._tau(t_step, steps_t, epoch, epochs)
            if self.cfg.alternate and self.cfg.interleave:  # a w step, a theta step, ...
                w_batches = self._epoch(self.w_split, gen)
                t_batches = self._epoch(self.theta_split, gen)
                for (xw, yw), (xt, yt) in zip(w_batches, t_batches, strict=False):
                    tau = self._tau(t_step, steps_t, epoch, epochs)
                    with torch.no_grad():
                        route = self._route(theta, tau)
                    self._w_step(opt_w, sched, xw, yw, route, what_w)
                    ce = theta_step(xt, yt, tau, epoch)
                    ce_sum, n, t_step = ce_sum + ce, n + 1, t_step + 1
            else:
                if self.cfg.alternate:  # an epoch of w steps, then one of theta steps
                    for x, y in self._epoch(self.w_split, gen):
                        with torch.no_grad():
                            route = self._route(theta, self._tau(t_step, steps_t, epoch, epochs))
                        self._w_step(opt_w, sched, x, y, route, what_w)
                for x, y in self._epoch(self.theta_split, gen):
                    tau = self._tau(t_step, steps_t, epoch, epochs)
                    ce = theta_step(x, y, tau, epoch)
                    ce_sum, n, t_step = ce_sum + ce, n + 1, t_step + 1
            probs = [t.detach().softmax(0).cpu().tolist() for t in theta]
            with torch.no_grad():
                ec = float(expected_cost([t.softmax(0) for t in theta], table, self.costs.fixed))
            history.append(
                {
                    "epoch": epoch + 1,
                    "probs": [[round(p, 5) for p in row] for row in probs],
                    "expected_cost": ec,
                    "ce": ce_sum / max(n, 1),
                    "tau": tau if n else None,
                    # the epoch's wall time (each theta step syncs on its CE): what a search
                    # costs, summed over calls that resumed it
                    "seconds": round(time.perf_counter() - t0, 3),
                }
            )
            _save(
                {
                    "setting": trained,
                    "beta_decay": beta,
                    "epoch": epoch + 1,
                    "net": self.net.state_dict(),
                    "theta": [t.detach().cpu() for t in theta],
                    "opt_t": opt_t.state_dict(),
                    "opt_w": opt_w.state_dict(),
                    "sched": sched.state_dict(),
                    "gen": gen.get_state(),
                    "torch_rng": torch.get_rng_state(),
                    "t_step": t_step,
                    "history": history,
                },
                ckpt,
            )
            log.info(
                "supernet search %sepoch %d/%d: CE %.4f%s",
                # darts weighs no cost: its one setting's alpha=0 read as a choice made
                f"{setting.label()} " if self.costs.metric != NO_COST else "",
                epoch + 1,
                epochs,
                ce_sum / max(n, 1),
                "" if setting.alpha == 0 else f", E[{self.costs.metric}] {ec:.4g}",
            )
            if report:  # a search without costs (DARTS) has one setting and no alpha to say
                costed = self.costs.metric != NO_COST
                report(f"theta {setting.label()}" if costed else "theta", epoch + 1, epochs)
        probs = [t.detach().softmax(0).cpu().tolist() for t in theta]
        return SettingResult(setting, probs, history)
