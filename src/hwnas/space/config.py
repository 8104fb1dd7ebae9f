"""Config sections of the built-in search spaces, registered with their factories.

Torch-free: a config is validated without building anything. The factories are named as
``module:attr`` strings and imported only when a space is made.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from hwnas.core.config import KindConfig, Section
from hwnas.core.registry import spaces
from hwnas.space.vocab.cell import CELL_OPS


class StageConfig(Section):
    """One stage of a chain space: its depth and width choices and its stride."""

    depths: list[int] = Field(
        description="Allowed numbers of blocks in this stage; 0 drops the stage (its stride "
        "and width too), so the search can reach very small networks."
    )
    widths: list[int] = Field(description="Allowed output channel counts of this stage.")
    stride: int = Field(1, ge=1, le=4, description="Stride of the stage's first block.")

    @field_validator("depths", "widths")
    @classmethod
    def _unique(cls, v: list[int], info: ValidationInfo) -> list[int]:
        if not v:
            raise ValueError("must list at least one choice")
        least = 0 if info.field_name == "depths" else 1
        if any(x < least for x in v):
            raise ValueError(f"choices must be >= {least}")
        return sorted(set(v))


def _default_stages() -> list[StageConfig]:
    return [
        StageConfig(depths=[0, 1, 2], widths=[4, 8, 16, 24], stride=1),
        StageConfig(depths=[0, 1, 2, 3], widths=[8, 16, 24, 32], stride=2),
        StageConfig(depths=[0, 1, 2, 3], widths=[16, 24, 32, 48, 64], stride=2),
    ]


@spaces.register("chain", factory="hwnas.space.chain:ChainSpace")
class ChainSpaceConfig(KindConfig):
    """MobileNetV2/FBNet-like chain: stem conv -> stages of MBConv blocks -> head."""

    name: Literal["chain"] = "chain"
    stem_channels: int = Field(8, ge=1, description="Output channels of the stem 3x3 conv.")
    stem_stride: int = Field(1, ge=1, le=4, description="Stride of the stem conv.")
    stages: list[StageConfig] = Field(default_factory=_default_stages, description="Stages.")
    kernels: list[int] = Field([3, 5, 7], description="Depthwise kernel sizes of MBConv ops.")
    expansions: list[int] = Field([1, 3, 6], description="Expansion ratios of MBConv ops.")
    allow_skip: bool = Field(
        True, description="Offer `skip` (identity) where a block keeps its shape."
    )
    head_channels: int = Field(0, ge=0, description="1x1 conv before pooling; 0 = none.")
    dropout: float = Field(0.0, ge=0.0, lt=1.0, description="Dropout before the classifier.")
    supernet_widths: list[int] = Field(
        default_factory=list,
        description="One-shot search covers the sub-space with these stage widths (one per "
        "stage; default: each stage's widest), every stage up to its deepest depth, `skip` "
        "where the shape allows it (so depth is searched); widths are fixed in it.",
    )

    @model_validator(mode="after")
    def _supernet_widths(self) -> ChainSpaceConfig:
        w = self.supernet_widths
        if w and (
            len(w) != len(self.stages)
            or any(x not in s.widths for x, s in zip(w, self.stages, strict=False))
        ):
            raise ValueError("supernet_widths: one width per stage, each among its widths")
        return self

    @field_validator("kernels")
    @classmethod
    def _odd_kernels(cls, v: list[int]) -> list[int]:
        if not v or any(k < 1 or k % 2 == 0 for k in v):
            raise ValueError("kernels must be odd positive integers")
        return sorted(set(v))

    @field_validator("expansions")
    @classmethod
    def _expansions(cls, v: list[int]) -> list[int]:
        if not v or any(e < 1 for e in v):
            raise ValueError("expansions must be integers >= 1")
        return sorted(set(v))

    @field_validator("stages")
    @classmethod
    def _stages(cls, v: list[StageConfig]) -> list[StageConfig]:
        if not v:
            raise ValueError("need at least one stage")
        return v


@spaces.register("cell", factory="hwnas.space.cell:CellSpace")
class CellSpaceConfig(KindConfig):
    """NAS-Bench-201 cell: 4 nodes, 6 edges, 5 ops; macro skeleton of the benchmark."""

    name: Literal["cell"] = "cell"
    channels: int = Field(16, ge=1, description="C: channels of the first stage (2C, 4C after).")
    cells_per_stage: int = Field(5, ge=1, description="N: cells in each of the three stages.")
    ops: list[str] = Field(
        list(CELL_OPS), description="Allowed ops per edge (a subset of the five)."
    )

    @field_validator("ops")
    @classmethod
    def _known_ops(cls, v: list[str]) -> list[str]:
        unknown = [o for o in v if o not in CELL_OPS]
        if unknown or not v:
            raise ValueError(f"ops must be a non-empty subset of {list(CELL_OPS)}")
        if len(set(v)) < 2:  # mutation had nothing to change to (a traceback in evolution)
            raise ValueError("at least two, or the space is one cell with nothing to search")
        return [o for o in CELL_OPS if o in v]


@spaces.register("graph", factory="hwnas.space.graph:GraphSpace")
class GraphSpaceConfig(KindConfig):
    """Multi-branch CNN DAGs grown from a small start net by NASH network morphisms."""

    name: Literal["graph"] = "graph"
    channels: list[int] = Field(
        [16, 32, 64], description="Start net: conv widths per resolution level (pool between)."
    )
    depth: int = Field(1, ge=1, description="Start net: convs per level.")
    kernel: int = Field(3, ge=1, description="Start net: kernel size.")
    morphisms: list[Literal["deeper", "wider", "skip", "scale"]] = Field(
        ["deeper", "wider", "skip"],
        description="Morphism kinds to sample (uniformly); `scale` = joint depth+width step.",
    )
    deeper_kernels: list[int] = Field([3, 5], description="Kernels of inserted layers.")
    widen_factors: list[int] = Field([2, 4], description="Factors a conv may be widened by.")
    skip_joins: list[Literal["add", "concat"]] = Field(
        ["add", "concat"], description="How a new skip joins its target."
    )
    scale_depth: float = Field(1.2, gt=1.0, description="`scale`: depth ratio per step.")
    scale_width: float = Field(1.1, gt=1.0, description="`scale`: width ratio per step.")
    max_channels: int = Field(512, ge=1, description="No conv grows wider than this.")
    max_layers: int = Field(40, ge=1, description="No more convs than this.")
    max_nodes: int = Field(80, ge=1, description="No more nodes than this.")
    sample_morphs: int = Field(
        8, ge=0, description="Random archs: the start net after 0..N random morphisms."
    )


@spaces.register("fbnet", factory="hwnas.space.fbnet:FbnetSpace")
class FbnetSpaceConfig(KindConfig):
    """FBNet (Wu et al. 2019): 22 layers x 9 blocks on a fixed macro net (HW-NAS-Bench's space)."""

    name: Literal["fbnet"] = "fbnet"
    width_multiplier: float = Field(
        1.0, gt=0.0, le=4.0, description="Scales every width (rounded to a multiple of 8)."
    )
    stem_stride: int = Field(
        2, ge=1, le=4, description="Stride of the 3x3 stem (2 for ImageNet, 1 for small inputs)."
    )
    head_channels: int = Field(1984, ge=0, description="1x1 conv before pooling; 0 = none.")


class FastGroupConfig(Section):
    """One conv group of the fast-CNN space: its width, depth, kernel and residual choices."""

    widths: list[int] = Field(description="Allowed output channels of the group's convs.")
    depths: list[int] = Field(
        [1, 2, 3], description="Allowed numbers of convs (the first one pools after it)."
    )
    kernels: list[int] = Field([3], description="Allowed (odd) kernel sizes of the convs.")
    residual: list[bool] = Field(
        [False, True],
        description="Whether a residual add wraps convs 2..depth (needs depth >= 2).",
    )
    pools: list[Literal["after", "before"]] = Field(
        ["after"],
        description="Where the group's 2x2 max-pool sits: `after` its first conv (airbench's "
        "order) or `before` it, so that conv runs at the halved resolution (4x fewer MACs).",
    )
    grouped: list[int] = Field(
        [1],
        description="Allowed channel groups of the convs after the group's first (1 = dense; "
        "G cuts their MACs and weights G-fold; the first conv stays dense so channels mix). "
        "Every width must split into every choice.",
    )

    @field_validator("widths", "depths", "kernels", "grouped")
    @classmethod
    def _choices(cls, v: list[int], info: ValidationInfo) -> list[int]:
        if not v or any(x < 1 for x in v):
            raise ValueError("must list at least one choice, each >= 1")
        if info.field_name == "kernels" and any(k % 2 == 0 for k in v):
            raise ValueError("kernels must be odd")
        return sorted(set(v))

    @field_validator("residual", "pools")
    @classmethod
    def _flags(cls, v: list[Any]) -> list[Any]:
        if not v:
            raise ValueError("must list at least one choice")
        return sorted(set(v))

    @model_validator(mode="after")
    def _splittable(self) -> FastGroupConfig:
        bad = [(w, s) for w in self.widths for s in self.grouped if w % s]
        if bad:
            w, s = bad[0]
            raise ValueError(f"width {w} does not split into {s} groups (grouped)")
        return self


def _fast_groups() -> list[FastGroupConfig]:
    return [
        FastGroupConfig(widths=[32, 48, 64, 96, 128]),
        FastGroupConfig(widths=[64, 96, 128, 192, 256, 384]),
        FastGroupConfig(widths=[96, 128, 192, 256, 384, 512]),
    ]


@spaces.register("fastcnn", factory="hwnas.space.fastcnn:FastCnnSpace")
class FastCnnSpaceConfig(KindConfig):
    """Fast-CNN macro of the fast-training literature (airbench): patch-whitening stem, conv
    groups [conv -> max-pool -> BN -> act -> (conv -> BN -> act)*], max-pool, linear head.
    Holds the reference nets `airbench94` and `airbench96` with its default choices."""

    name: Literal["fastcnn"] = "fastcnn"
    whiten_kernel: int = Field(
        2, ge=1, le=5, description="Patch size of the whitening stem (2*C*k*k filters)."
    )
    groups: list[FastGroupConfig] = Field(
        default_factory=_fast_groups, description="Conv groups, each halving the resolution."
    )
    activations: list[Literal["gelu", "relu"]] = Field(
        ["gelu", "relu"], description="Allowed activations (one for the whole net)."
    )
    logit_scale: float = Field(
        1 / 9, gt=0.0, description="Constant the logits are multiplied by (a fixed temperature)."
    )

    @field_validator("groups")
    @classmethod
    def _groups(cls, v: list[FastGroupConfig]) -> list[FastGroupConfig]:
        if not v:
            raise ValueError("need at least one group")
        return v

    @field_validator("activations")
    @classmethod
    def _acts(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("must list at least one activation")
        return sorted(set(v))


@spaces.register(
    "user", factory="hwnas.space.user:from_config", pattern=r"[A-Za-z_][\w.]*:[A-Za-z_]\w*"
)
class UserSpaceConfig(KindConfig):
    """A space you wrote: a subclass of `hwnas.space.user.UserSpace` (see docs/user-spaces.md)."""

    name: str = Field(
        pattern=r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$",
        description="`module.path:ClassName`, importable from where hwnas runs.",
    )
    options: dict[str, Any] = Field(
        default_factory=dict, description="Keyword arguments for the class's constructor."
    )
