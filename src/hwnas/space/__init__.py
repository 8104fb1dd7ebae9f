"""Search spaces: what architectures can be found."""

from __future__ import annotations

from hwnas.space.base import Arch, InvalidArch, Space, arch_hash

__all__ = ["Arch", "InvalidArch", "Space", "arch_hash", "make_space"]


def make_space(cfg: object) -> Space:
    """The space a validated config section names."""
    from hwnas.experiment.config import (
        CellSpaceConfig,
        ChainSpaceConfig,
        FbnetSpaceConfig,
        GraphSpaceConfig,
        UserSpaceConfig,
    )

    if isinstance(cfg, ChainSpaceConfig):
        from hwnas.space.chain import ChainSpace

        return ChainSpace(cfg)
    if isinstance(cfg, CellSpaceConfig):
        from hwnas.space.cell import CellSpace

        return CellSpace(cfg)
    if isinstance(cfg, GraphSpaceConfig):
        from hwnas.space.graph import GraphSpace

        return GraphSpace(cfg)
    if isinstance(cfg, FbnetSpaceConfig):
        from hwnas.space.fbnet import FbnetSpace

        return FbnetSpace(cfg)
    if isinstance(cfg, UserSpaceConfig):
        from hwnas.space.user import load_user_space

        return load_user_space(cfg.name, cfg.options)
    raise ValueError(f"space: unsupported {cfg!r}")
