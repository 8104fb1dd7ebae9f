"""Resource losses of differentiable hardware-aware search, and the settings that weigh them.

``E_theta[C] = fixed + sum_j sum_i softmax(theta_j)_i * C(i, j)`` is exact for an additive
cost (SqueezeNAS's L_E) and differentiable in theta. Three forms:

- additive (SqueezeNAS): ``CE + alpha * E[C] / C_ref``, ``C_ref`` the expected cost under
  uniform theta, so alpha is unitless and one value means the same on any metric or device;
- multiplicative (FBNet): ``CE * alpha * log(1 + E[C] / C_min) ** beta``; FBNet writes
  ``log(LAT) ** beta`` with LAT in ms of a phone, which is negative below 1 ms: measuring the
  cost in units of the cheapest net (plus one) keeps the log positive on any unit;
- target: ``CE + alpha * |E[C] / T - 1|``, so a user asks for "a net at 2 ms" directly.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

DEFAULT_ALPHA = 0.2
DEFAULT_TARGET_ALPHA = 1.0


@dataclass(frozen=True)
class Setting:
    """One point of a sweep: the loss form and its weight, or a target."""

    loss: str  # additive | multiplicative | target
    alpha: float
    beta: float = 0.6
    target: float | None = None
    #: the target is a constraint's bound (``<=``): a derived net must not exceed it
    bound: bool = False

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"loss": self.loss, "alpha": self.alpha}
        if self.loss == "multiplicative":
            out["beta"] = self.beta
        if self.target is not None:
            out["cost_target"] = self.target
        if self.bound:
            out["cost_bound"] = True
        return out

    def label(self) -> str:
        if self.target is not None:
            return f"target={self.target:g}"
        return f"alpha={self.alpha:g}" + (f",beta={self.beta:g}" if self.loss != "additive" else "")


def expected_cost(
    probs: list[torch.Tensor], table: list[torch.Tensor], fixed: float
) -> torch.Tensor:
    """``E[C]`` under per-position pick probabilities."""
    return fixed + sum((p * c).sum() for p, c in zip(probs, table, strict=True))  # type: ignore[return-value]


def beta_decay_term(theta: list[torch.Tensor]) -> torch.Tensor:
    """beta-DARTS's regulariser: the mean over positions of logsumexp(theta). Its gradient
    is softmax(theta), so descending it pulls every logit down in proportion to its weight:
    the favoured ops most, which keeps one op's logit from running away from the rest."""
    return torch.stack([t.logsumexp(0) for t in theta]).mean()


def total_loss(
    ce: torch.Tensor, cost: torch.Tensor, s: Setting, ref: float, cheapest: float
) -> torch.Tensor:
    """Task loss and resource loss together, per ``s``'s form (alpha 0: the task loss alone,
    as for a strategy without costs, whose table is all zeros)."""
    if s.alpha == 0:
        return ce
    if s.target is not None:
        return ce + s.alpha * (cost / s.target - 1.0).abs()
    if s.loss == "multiplicative":
        scale = max(cheapest, 1e-12)
        return ce * s.alpha * torch.log1p(cost / scale) ** s.beta
    return ce + s.alpha * cost / ref


def ignored(cfg: Any) -> str | None:
    """A key of ``cfg`` (FbnetStrategyConfig) that the loss it chose would ignore: refused
    when a search starts, not dropped without a word (kept out of the section's validation,
    so a study an older version made with one still opens)."""
    mult = cfg.loss == "multiplicative"
    if cfg.alpha is not None and cfg.alphas:
        return "give alpha or a sweep of alphas, not both"
    if mult and (cfg.cost_target is not None or cfg.cost_targets):
        return (
            "a cost target has its own penalty (alpha * |E[C] / T - 1|): drop loss: "
            "multiplicative, or the target"
        )
    if mult and cfg.alphas:
        return "loss: multiplicative sweeps betas (alpha only scales it), not alphas"
    if not mult and cfg.betas:
        return "betas sweep loss: multiplicative (give it, or alphas)"
    if cfg.cost_target is not None and cfg.cost_targets:  # the list won, silently
        return "give cost_target or a sweep of cost_targets, not both"
    return None


def settings_of(cfg: Any, default_target: float | None) -> list[Setting]:
    """The sweep a strategy section asks for, in order (``cfg``: FbnetStrategyConfig)."""
    if why := ignored(cfg):
        raise ValueError(why)
    targets = list(cfg.cost_targets) or ([cfg.cost_target] if cfg.cost_target else [])
    bound = False
    swept = cfg.alphas or cfg.betas or cfg.alpha is not None or cfg.loss == "multiplicative"
    if not targets and not swept and default_target is not None:
        targets, bound = [default_target], True
    if targets:
        alpha = DEFAULT_TARGET_ALPHA if cfg.alpha is None else cfg.alpha
        return [Setting("target", alpha, cfg.beta, t, bound) for t in targets]
    if cfg.loss == "multiplicative":  # alpha only scales the loss: beta trades off
        alpha = DEFAULT_ALPHA if cfg.alpha is None else cfg.alpha
        if alpha <= 0:
            raise ValueError("the multiplicative loss needs alpha > 0 (it scales the whole loss)")
        return [Setting("multiplicative", alpha, b) for b in (cfg.betas or [cfg.beta])]
    alphas = list(cfg.alphas) or [DEFAULT_ALPHA if cfg.alpha is None else cfg.alpha]
    return [Setting("additive", a, cfg.beta) for a in alphas]
