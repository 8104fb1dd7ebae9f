"""The exported ONNX model on images as stored: its accuracy against the study's reported one.

    python benchmarks/export_raw.py --data cifar10-jpeg.tar.gz [--dir STUDY --trial N] [--tag T]

Without ``--dir`` it first runs a small CPU study on the archive (the default chain space,
1 epoch, 2 nets, one final training), so the final trial has a reported ``test_accuracy``.
Then ``hwnas export`` writes the model with its preprocessing inside, and this script, without
any hwnas code, decodes every ``test/<class>/*`` image of the archive with Pillow, feeds it
to ONNX Runtime as float32 NCHW pixel / 255, maps outputs to names through the model's own
``hwnas.classes`` metadata and counts the hits. The two accuracies must agree within 0.1 point
(issue "Trust": deployable export).
"""

from __future__ import annotations

import argparse
import io
import json
import sys
import tarfile
import tempfile
from pathlib import Path, PurePosixPath

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import hwnas, save  # noqa: E402


def small_study(data: str, out: Path) -> int:
    """A 2-net CPU study on ``data`` with one final training; the final trial's id."""
    sets = [
        "data.name=cifar10",
        "estimator.epochs=1",
        "final.repeats=1",
        "final.max_models=1",
        "strategy=random",
    ]
    args = ["search", "--out", str(out), "--data", data, "--budget", "2", "--quiet"]
    for s in sets:
        args += ["--set", s]
    hwnas(*args)
    trials = json.loads(hwnas("show", str(out), "--json", "--all").stdout)
    return max(t["id"] for t in trials if t.get("stage") == "final")


def raw_test_images(path: str) -> tuple[list[str], list[np.ndarray]]:
    """Class names and images (HWC uint8) of the archive's ``test/`` folder, as stored."""
    from PIL import Image

    names, images = [], []
    with tarfile.open(path) as tar:
        for m in tar:
            p = PurePosixPath(m.name)
            if not m.isfile() or len(p.parts) != 3 or p.parts[0] != "test":
                continue
            fh = tar.extractfile(m)
            assert fh is not None
            img = Image.open(io.BytesIO(fh.read())).convert("RGB")
            names.append(p.parts[1])
            images.append(np.asarray(img, dtype=np.uint8))
    return names, images


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", required=True, help="ImageFolder archive with test/<class>/")
    ap.add_argument("--dir", help="a study (default: a small one is run first)")
    ap.add_argument("--trial", type=int, help="a trial of --dir with test_accuracy")
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    import onnxruntime as ort

    with tempfile.TemporaryDirectory() as tmp:
        study = Path(args.dir) if args.dir else Path(tmp) / "study"
        trial = args.trial if args.dir else small_study(args.data, study)
        shown = json.loads(hwnas("show", str(study), "--json", "--all").stdout)
        reported = next(t for t in shown if t["id"] == trial)["metrics"]["test_accuracy"]
        model = Path(tmp) / "model.onnx"
        hwnas("export", str(study), "--trial", str(trial), "--output", str(model))
        sess = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
        meta = sess.get_modelmeta().custom_metadata_map
        classes = json.loads(meta["hwnas.classes"])
        names, images = raw_test_images(args.data)
        x = np.stack(images).transpose(0, 3, 1, 2).astype(np.float32) / 255.0
        inp = sess.get_inputs()[0].name
        batch = sess.get_inputs()[0].shape[0]
        step = batch if isinstance(batch, int) and batch > 0 else 500
        hits = 0
        for i in range(0, len(x), step):
            logits = sess.run(None, {inp: x[i : i + step]})[0]
            hits += sum(
                classes[k] == n for k, n in zip(logits.argmax(1), names[i : i + step], strict=True)
            )
    acc = hits / len(names)
    out = {
        "dataset": "CIFAR-10 (JPEG)" if "cifar" in args.data.lower() else args.data,
        "study": str(args.dir) if args.dir else "small CPU study (chain, 1 epoch, final x1)",
        "trial": trial,
        "test_images": len(names),
        "input": json.loads(meta["hwnas.input"]),
        "reported_test_accuracy": reported,
        "onnx_runtime_on_raw_images": acc,
        "difference_points": round(100 * (acc - reported), 3),
        "within_0_1_point": abs(acc - reported) <= 0.001,
    }
    save("export_raw" + (f"-{args.tag}" if args.tag else ""), out)


if __name__ == "__main__":
    main()
