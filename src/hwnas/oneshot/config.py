"""The ``supernet:`` section: how a one-shot strategy trains its supernet (torch-free)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from hwnas.core.config import Section


class SupernetConfig(Section):
    """Training of the shared weights w (once, reused by every setting) and of the
    architecture weights theta (per alpha or target, from the same w)."""

    epochs: int = Field(
        10,
        ge=0,
        description="Warm-up epochs of w alone, theta at zero (uniform) and the temperature at "
        "tau_start (shared by every alpha, target and cost metric: train once, specialise).",
    )
    search_epochs: int = Field(
        10, ge=1, description="Epochs of theta per setting (alpha or target)."
    )
    mixture: Literal["soft", "hard", "softmax"] = Field(
        "soft",
        description="`soft`: FBNet's mixed op, every candidate runs, weighted by a Gumbel-softmax "
        "sample (trains from scratch; costs all candidates per step); `hard`: one sampled "
        "candidate per position with straight-through gates (GDAS; a step costs one net, but a "
        "supernet trained only so stays near chance on deep spaces); `softmax`: DARTS's "
        "mixed op, weights softmax(theta), no noise. `strategy: darts` sets it by variant.",
    )
    alternate: bool = Field(
        True,
        description="Also update (a copy of) w during each setting's search, alternating "
        "epochs on w's and theta's data as FBNet does; false: theta alone on frozen w.",
    )
    interleave: bool = Field(
        False,
        description="With `alternate`: w and theta take turns batch by batch (DARTS, GDAS), "
        "instead of epoch by epoch (FBNet); an epoch ends with the shorter of the two splits, "
        "so use it with theta_fraction 0.5.",
    )
    op_batchnorm: Literal["affine", "plain"] = Field(
        "affine",
        description="BatchNorm inside the candidate ops: `affine` learns a scale and shift and "
        "keeps running statistics (as the stand-alone nets do); `plain` normalises by the "
        "batch alone, without scale or shift (the DARTS and GDAS search setting: an op cannot "
        "grow its output to win theta's favour). `spos` always uses `affine`, since its "
        "inherited weights go into stand-alone nets.",
    )
    cuda_graphs: bool = Field(
        True,
        description="On CUDA, record the forward and backward of the soft-mixture steps "
        "(`soft`, `softmax`) once as CUDA graphs and replay them: a supernet of small convs "
        "is bound by the host's per-op work, not the GPU (NB201 at batch 64 on an H100: 6.1x "
        "the eager steps' images/s). Optimiser steps stay eager; a hard mixture runs eagerly; "
        "a step that cannot be captured stops the run in one line: then set it false.",
    )
    precision: Literal["bf16", "fp32"] = Field(
        "bf16",
        description="Arithmetic of the supernet's steps on CUDA (the CPU runs fp32): `bf16` "
        "autocast, or `fp32` where a path's activations grow so large (skip and pool edges "
        "compounding over NB201's 15 cells) that bf16 rounds the convs' share away.",
    )
    w_grad_clip: float | None = Field(
        None, gt=0.0, description="Clip the norm of w's gradient at this (DARTS uses 5)."
    )
    theta_fraction: float = Field(
        0.2,
        gt=0.0,
        lt=1.0,
        description="Share of the training split that trains theta (w trains on the rest); "
        "the validation split is left to rank the derived nets.",
    )
    weights: str | None = Field(
        None,
        description="A trained supernet to start from (another study's "
        "`supernet/warmup.pt`, same space and data): the warm-up is skipped, only theta "
        "is trained for this run's settings.",
    )
    batch_size: int | None = Field(
        None, ge=1, description="Batch size of supernet training; default: data.batch_size."
    )
    w_lr: float = Field(
        0.1,
        gt=0.0,
        description="SGD learning rate of w (cosine to 0); during a search after a "
        "warm-up, w fine-tunes at a fifth of it.",
    )
    w_weight_decay: float = Field(1e-4, ge=0.0, description="Weight decay of w.")
    theta_lr: float = Field(0.01, gt=0.0, description="Adam learning rate of theta (FBNet).")
    theta_weight_decay: float = Field(5e-4, ge=0.0, description="Weight decay of theta.")
    theta_beta1: float = Field(
        0.9, ge=0.0, lt=1.0, description="Adam's first beta for theta (GDAS uses 0.5)."
    )
    beta_decay: float | None = Field(
        None,
        ge=0.0,
        description="Weight of the Beta-Decay regulariser on theta (beta-DARTS, Ye et al. "
        "2022): theta's loss gains lambda * the mean over positions of logsumexp(theta), with "
        "lambda = beta_decay * e / search_epochs in search epoch e (from 0), rising linearly "
        "from 0; it keeps theta's logits from growing apart, which is how DARTS collapses. "
        "Default: 25 with `strategy.variant: beta` (the paper's NAS-Bench-201 setting: 0.5 per "
        "epoch over 50), else 0 (off).",
    )
    tau_start: float = Field(
        5.0, gt=0.0, description="Gumbel-softmax temperature at the start of a search."
    )
    tau_end: float = Field(
        2.0,
        gt=0.0,
        description="Temperature at its end (see `tau_schedule`). Lower makes the soft "
        "mixture peaky, which w must follow: FBNet anneals to ~0.1 over 90 epochs; over a "
        "few, a peaky mixture lifted the loss back to chance (digits).",
    )
    tau_schedule: Literal["exponential", "linear"] = Field(
        "exponential",
        description="`exponential`: tau falls geometrically with every theta step (FBNet); "
        "`linear`: tau is set once per epoch, falling in equal steps from tau_start at the "
        "first epoch to tau_end at the last (GDAS), so most epochs sample at a high tau.",
    )

    @model_validator(mode="after")
    def _tau(self) -> SupernetConfig:
        if self.tau_end > self.tau_start:
            raise ValueError("supernet.tau_end must not exceed supernet.tau_start (it anneals)")
        if self.interleave and not self.alternate:
            raise ValueError("supernet.interleave takes turns of w and theta: it needs alternate")
        return self
