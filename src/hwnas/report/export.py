"""Export a trained trial as ONNX and prove the file computes what the PyTorch model does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from hwnas.core.errors import UserError
from hwnas.experiment.study import Study
from hwnas.hardware.profile import export_onnx, ort_session
from hwnas.space import make_space

TOLERANCE = 1e-4


class ExportError(UserError):
    """The trial cannot be exported (unknown, not trained, or the export disagrees)."""


#: what a study directory holds; an export must never overwrite them
STUDY_FILES = (
    "study.db",
    "study.db-wal",
    "study.db-shm",
    "pareto.json",
    "report.html",
    "hwnas.log",
)


def check_output(out_dir: str | Path, output: str | Path) -> None:
    """Refuse an output that is a directory or one of the study's own files."""
    out, study = Path(output).resolve(), Path(out_dir).resolve()
    if out.is_dir():
        raise ExportError(f"--output {output}: is a directory; name the file to write")
    own = out.parent == study and (out.name in STUDY_FILES or out.name.startswith("study-"))
    if own or study / "weights" in out.parents:
        raise ExportError(
            f"--output {output}: would overwrite the study's own files; write it elsewhere"
        )


def load_trained(
    out_dir: str | Path, trial_id: int
) -> tuple[torch.nn.Module, tuple[int, int, int]]:
    """The trained module of a trial, in eval mode, and its input shape (C, H, W)."""
    study = Study(out_dir)
    try:
        trial = study.store.trial(trial_id)
        if trial is None:
            raise ExportError(f"--trial {trial_id}: no such trial in {out_dir}")
        if not getattr(study.config.estimator, "needs_model", True):
            raise ExportError(
                f"--trial {trial_id}: its accuracy comes from a table, not from a trained model"
            )
        weights = study.weights_path(trial_id)
        if trial.status != "complete" or not weights.exists():
            raise ExportError(f"--trial {trial_id}: has no trained weights (status {trial.status})")
        io = study.store.get_meta_json("model_io")
        shape = (int(io["input_shape"][0]), int(io["input_shape"][1]), int(io["input_shape"][2]))
        model = make_space(study.config.space).build(trial.arch, shape, int(io["num_classes"]))
        model.load_state_dict(torch.load(weights, map_location="cpu"))
        return model.eval(), shape
    finally:
        study.close()


def export_trial(
    out_dir: str | Path, trial_id: int, output: str | Path, fmt: str = "onnx"
) -> tuple[Path, float]:
    """Write the ONNX file; return it and the max abs difference to PyTorch on random inputs."""
    if fmt != "onnx":
        raise ExportError(f"--format {fmt}: only onnx is supported")
    check_output(out_dir, output)
    model, shape = load_trained(out_dir, trial_id)
    path = export_onnx(model, shape, output)
    sess = ort_session(path.read_bytes())
    gen = torch.Generator().manual_seed(0)
    diff = 0.0
    for _ in range(4):
        x = torch.randn(1, *shape, generator=gen)
        with torch.no_grad():
            ref = model(x).numpy()
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        diff = max(diff, float(np.abs(ref - got).max()))
    if diff > TOLERANCE:
        raise ExportError(
            f"exported model disagrees with PyTorch (max abs diff {diff:.2e} > {TOLERANCE})"
        )
    return path, diff
