"""The config section of the ``example-convs`` space, registered without importing torch.

The kind is registered with the decorator on the *config class*, naming the factory as a
``"module:attr"`` string: hwnas imports :mod:`hwnas_example_plugin.convs` (and torch with it)
only when the space is built, not when a config is validated.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from hwnas.core.config import KindConfig
from hwnas.core.registry import spaces


@spaces.register("example-convs", factory="hwnas_example_plugin.convs:ConvChainSpace")
class ExampleConvsConfig(KindConfig):
    """Example plugin space: a plain chain of conv-BN-ReLU layers, global pooling, a classifier."""

    name: Literal["example-convs"] = "example-convs"
    depths: list[int] = Field([1, 2, 3, 4], description="Allowed numbers of conv layers.")
    widths: list[int] = Field([8, 16, 24, 32], description="Allowed output channels of a layer.")
    kernels: list[int] = Field([3, 5], description="Allowed kernel sizes of a layer (odd).")
    first_stride: int = Field(
        1, ge=1, le=2, description="Stride of the first conv (2 halves the resolution: 32x32)."
    )

    @field_validator("depths", "widths", "kernels")
    @classmethod
    def _choices(cls, v: list[int], info: ValidationInfo) -> list[int]:
        if not v or any(x < 1 for x in v):
            raise ValueError("must list at least one choice, each >= 1")
        if info.field_name == "kernels" and any(k % 2 == 0 for k in v):
            raise ValueError("kernels must be odd")
        return sorted(set(v))

    @model_validator(mode="after")
    def _two_networks(self) -> ExampleConvsConfig:
        if len(self.depths) == len(self.widths) == len(self.kernels) == 1:
            raise ValueError("the space holds one network: give some key a second choice")
        return self
