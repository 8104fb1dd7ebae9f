"""Config of the built-in datasets (one section model, three kinds), with their loaders.

A dataset's factory is called as ``factory(section, seed)``. Torch-free.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, ValidationInfo, field_validator

from hwnas.core.config import KindConfig
from hwnas.core.registry import datasets


@datasets.register("digits", factory="hwnas.data.digits:load_digits")
@datasets.register("cifar10", factory="hwnas.data.cifar10:load_cifar10")
@datasets.register("imagefolder", factory="hwnas.data.imagefolder:load_imagefolder")
class DataConfig(KindConfig):
    """Which dataset, and how it is split, subset and augmented."""

    name: str = Field(
        "digits",
        description="Dataset kind: `digits` (bundled, offline), `cifar10`, `imagefolder` (or a "
        "plugin's).",
    )
    path: str | None = Field(
        None,
        description="Dataset location for `cifar10` / `imagefolder`: a directory, a `.tar.gz`, "
        "or (cifar10) torchvision's python-pickle folder. Images in `<class>/` folders, or "
        "in `train/<class>/` with `val/` (the validation split; else carved from train) and "
        "`test/` (else a fixed share of train) beside it.",
    )
    resolution: int | None = Field(
        None,
        ge=4,
        le=1024,
        description=(
            "Square input size in pixels; default: the data's own (`imagefolder`: the "
            "first image's larger side; images of other sizes are resized to it, and said)."
        ),
    )
    subset: float = Field(
        1.0, gt=0.0, le=1.0, description="Fraction of the training data used (stratified, seeded)."
    )
    val_fraction: float = Field(
        0.2, gt=0.0, lt=0.9, description="Share of the training data held out for validation."
    )
    batch_size: int = Field(64, ge=1, le=65536, description="Mini-batch size for training.")
    augment: bool = Field(
        None,
        validate_default=True,
        description="Random crop (zero padding of 4 pixels, 1 below 16x16) and horizontal "
        "flip while training. Default: the dataset's usual recipe, on for `digits` and "
        "`cifar10`, off for `imagefolder` (its images are unknown).",
    )
    flip: bool = Field(
        None,
        validate_default=True,
        description="With `augment`: also mirror half the images. Default: on, except for "
        "`digits` (a mirrored digit is another shape); turn it off for text and signs too.",
    )
    cache_dir: str | None = Field(
        None, description="Where decoded uint8 arrays are cached; default `~/.cache/hwnas`."
    )

    @field_validator("path")
    @classmethod
    def _digits_reads_no_path(cls, v: str | None, info: ValidationInfo) -> str | None:
        """A path beside the bundled digits would be ignored; the user meant another dataset."""
        if v is not None and info.data.get("name") == "digits":
            raise ValueError(
                "digits is bundled and reads no path: set data.name to the kind the path "
                "holds (cifar10, imagefolder)"
            )
        return v

    @field_validator("augment", "flip", mode="before")
    @classmethod
    def _dataset_recipe(cls, v: Any, info: ValidationInfo) -> Any:
        """Unset augmentation follows the dataset: 1-pixel shifts make digits a task where a
        larger net earns its latency (without them, 15 us nets already saturate), while a
        mirrored digit is not a digit."""
        if v is not None:
            return v
        name = info.data.get("name", "digits")
        if info.field_name == "augment":
            return name != "imagefolder"
        return name != "digits"
