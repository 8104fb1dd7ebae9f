"""Write the CIFAR-10 (JPEG) archive as ``train.pt`` / ``test.pt`` tensors of uint8 NHWC images.

    python benchmarks/cifar_pt.py .data/cifar10-jpeg.tar.gz OUT_DIR

The layout airbench's own scripts read (``{'images', 'labels', 'classes'}``), so an unmodified
copy of them can run as an outside reference on the same JPEG images hwnas trains on, with no
download (benchmarks/gpu_airbench_reference.sh). Classes in sorted folder order, which is
CIFAR-10's own label order.
"""

from __future__ import annotations

import io
import sys
import tarfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image


def main() -> None:
    archive, out = Path(sys.argv[1]), Path(sys.argv[2])
    out.mkdir(parents=True, exist_ok=True)
    splits: dict[str, list[tuple[str, np.ndarray]]] = {"train": [], "test": []}
    with tarfile.open(archive) as tar:
        for m in tar:
            parts = Path(m.name).parts
            if not m.isfile() or len(parts) < 3 or parts[-3] not in splits:
                continue
            data = tar.extractfile(m).read()  # type: ignore[union-attr]
            img = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"))
            splits[parts[-3]].append((parts[-2], img))
    classes = sorted({c for c, _ in splits["train"]})
    for name, items in splits.items():
        images = torch.from_numpy(np.stack([i for _, i in items]))
        labels = torch.tensor([classes.index(c) for c, _ in items])
        torch.save({"images": images, "labels": labels, "classes": classes}, out / f"{name}.pt")
        print(name, tuple(images.shape), "classes", len(classes))


if __name__ == "__main__":
    main()
