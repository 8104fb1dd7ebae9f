"""Export a trained trial as ONNX and prove the file computes what the PyTorch model does.

By default the file is deployable as it is: it takes the image as stored, float32 NCHW pixel /
255 in [0, 1], and applies the dataset's normalisation inside the graph, so nothing outside it
must know the training statistics. Its ``metadata_props`` say so: ``hwnas.input`` (layout,
range, the mean and std applied inside), ``hwnas.classes`` (class names in output order) and
``hwnas.arch`` (the arch hash), ``hwnas.arch_json`` (the arch itself, as ``--arch`` takes it)
and ``hwnas.space`` (its space's kind). ``preprocessing=False`` gives the bare net, which expects
normalised inputs.
"""

from __future__ import annotations

import contextlib
import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


#: model file suffixes of other formats than the ONNX file an export writes
OTHER_FORMATS = {
    ".pt": "a PyTorch file",
    ".pth": "a PyTorch file",
    ".torchscript": "TorchScript",
    ".tflite": "TensorFlow Lite",
    ".pb": "a TensorFlow graph",
    ".h5": "a Keras file",
    ".keras": "a Keras file",
    ".engine": "a TensorRT engine",
    ".trt": "a TensorRT engine",
    ".mlmodel": "Core ML",
    ".ort": "an ORT-format model",
}


def check_output(out_dir: str | Path, output: str | Path, force: bool = False) -> None:
    """Refuse an output that is a directory or one of the study's own files, and an existing
    file unless ``force``."""
    out, study = Path(output).resolve(), Path(out_dir).resolve()
    if out.is_dir():
        raise ExportError(f"--output {output}: is a directory; name the file to write")
    if out.suffix.lower() in OTHER_FORMATS:  # an ONNX file under a name that promises another
        raise ExportError(
            f"--output {output}: export writes ONNX, not {OTHER_FORMATS[out.suffix.lower()]}; "
            "name the file .onnx"
        )
    own = out.parent == study and (out.name in STUDY_FILES or out.name.startswith("study-"))
    if own or study / "weights" in out.parents:
        raise ExportError(
            f"--output {output}: would overwrite the study's own files; write it elsewhere"
        )
    if out.exists() and not force:
        raise ExportError(f"--output {output}: exists; use --force to replace it")
    above = next(p for p in out.parents if p.exists())  # the folders below it are made
    if not above.is_dir():
        raise ExportError(f"--output {output}: {above} is a file, not a directory")


class Preprocessed(torch.nn.Module):
    """``net((x - mean) / std)``: the normalisation a net was trained with, inside the graph."""

    def __init__(self, net: torch.nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        mean: torch.Tensor = self.mean  # type: ignore[assignment]
        std: torch.Tensor = self.std  # type: ignore[assignment]
        return self.net((x - mean) / std)


@dataclass
class Trained:
    """A trained trial, ready to export: its net (eval mode), input shape and data facts."""

    model: torch.nn.Module
    shape: tuple[int, int, int]
    io: dict[str, Any]
    arch_hash: str
    arch: Any  # the arch itself, as its space takes it (`--arch`, `strategy.start`)
    space: str


def _data_facts(study: Study, io: dict[str, Any]) -> dict[str, Any]:
    """mean/std/class names: stored with the study since they were recorded, else read
    from the data (a study from before, whose data is still where it was)."""
    if "mean" in io:
        return io
    from hwnas.data import load_dataset

    ds = load_dataset(study.config.data, study.config.seed)
    return {**io, "mean": list(ds.mean), "std": list(ds.std), "class_names": ds.class_names}


def load_trained(out_dir: str | Path, trial_id: int) -> Trained:
    """The trained module of a trial, in eval mode, with what an export needs to know."""
    study = Study(out_dir, readonly=True)
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
            finals = [
                t.id
                for t in study.store.trials()
                if t.info.get("final_of") == trial_id and study.weights_path(t.id).exists()
            ]
            hint = (
                f"; its final training{'s' if len(finals) > 1 else ''} "
                f"{', '.join(f'#{i}' for i in finals)} export{'' if len(finals) > 1 else 's'}"
                if finals
                else f"; `hwnas train {out_dir} --trial {trial_id}` trains it"
                if trial.status in ("complete", "pruned")
                else ""
            )
            raise ExportError(
                f"--trial {trial_id}: has no trained weights (status {trial.status}){hint}"
            )
        io = study.store.get_meta_json("model_io")
        if io is None:
            raise ExportError(f"{out_dir}: the study records no model input shape")
        shape = (int(io["input_shape"][0]), int(io["input_shape"][1]), int(io["input_shape"][2]))
        model = make_space(study.config.space).build(trial.arch, shape, int(io["num_classes"]))
        model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
        return Trained(
            model.eval(),
            shape,
            _data_facts(study, io),
            trial.arch_hash,
            trial.arch,
            study.config.space.name,
        )
    finally:
        study.close()


def final_runs_note(out_dir: str | Path, trial_id: int) -> str | None:
    """A search trial's weights are those of its short search training; where the trial has
    final trainings (its own trials, stage ``final``) the user most likely wants one of them,
    and ``show`` prints their mean beside it, so say which ids to export instead."""
    study = Study(out_dir, readonly=True)
    try:
        runs = [
            t
            for t in study.store.trials()
            if t.stage == "final" and t.parent_id == trial_id and t.status == "complete"
        ]
    finally:
        study.close()
    if not runs:
        return None
    listed = ", ".join(
        f"#{t.id} (test {100 * float(t.metrics['test_accuracy']):.2f}%)"
        if "test_accuracy" in t.metrics
        else f"#{t.id}"
        for t in runs
    )
    return (
        f"note: trial {trial_id}'s weights are its search training's; its final trainings are "
        f"{listed}: export one of them (--trial ID) for the final-trained net"
    )


def _add_metadata(path: Path, props: dict[str, str]) -> None:
    import onnx

    m = onnx.load(str(path))
    for key, value in props.items():
        entry = m.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(m, str(path))


def export_trial(
    out_dir: str | Path,
    trial_id: int,
    output: str | Path,
    fmt: str = "onnx",
    preprocessing: bool = True,
    force: bool = False,
    dynamic_batch: bool = False,
) -> tuple[Path, float]:
    """Write the ONNX file; return it and the max abs difference to PyTorch on random inputs.
    Its batch is 1 (what an MCU or a latency target runs), or with ``dynamic_batch`` sized by
    each call (a server batching requests)."""
    if fmt != "onnx":
        raise ExportError(f"--format {fmt}: only onnx is supported")
    check_output(out_dir, output, force)
    trained = load_trained(out_dir, trial_id)
    shape, io = trained.shape, trained.io
    model = trained.model
    if preprocessing:
        model = Preprocessed(model, io["mean"], io["std"]).eval()
        described = {
            "layout": "NCHW",
            "dtype": "float32",
            "range": [0.0, 1.0],
            "scale": "pixel / 255",
            "mean": io["mean"],
            "std": io["std"],
            "normalised_inside": True,
        }
    else:
        described = {
            "layout": "NCHW",
            "dtype": "float32",
            "normalised_inside": False,
            "expects": "(pixel / 255 - mean) / std",
            "mean": io["mean"],
            "std": io["std"],
        }
    final = Path(output)
    # written beside the output and renamed once checked: a kill or a failed check never
    # leaves a half-written or wrong model under the name the user asked for
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    try:
        path = export_onnx(model, shape, tmp, dynamic_batch)
    except OSError as exc:  # the file name the user gave, not the temporary one beside it
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)
        raise ExportError(f"--output {output}: cannot write there ({exc.strerror})") from None
    try:
        _add_metadata(
            path,
            {
                "hwnas.input": json.dumps(described),
                "hwnas.classes": json.dumps(io.get("class_names") or []),
                "hwnas.arch": trained.arch_hash,
                "hwnas.arch_json": json.dumps(trained.arch),  # what `--arch` takes
                "hwnas.space": trained.space,
            },
        )
        diff = _check(path, model, shape, preprocessing, 3 if dynamic_batch else 1)
    except BaseException:
        path.unlink(missing_ok=True)
        raise
    os.replace(path, final)
    return final, diff


def _check(
    path: Path, model: torch.nn.Module, shape: tuple[int, int, int], pre: bool, batch: int = 1
) -> float:
    """The max abs difference between ``path`` in ONNX Runtime and ``model`` (or raise), on
    inputs of ``batch`` images."""
    sess = ort_session(path.read_bytes())
    gen = torch.Generator().manual_seed(0)
    diff = 0.0
    for _ in range(4):
        x = torch.rand(batch, *shape, generator=gen)
        if not pre:
            x = x * 4 - 2  # the bare net sees normalised values
        with torch.no_grad():
            ref = model(x).numpy()
        got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})[0]
        diff = max(diff, float(np.abs(ref - got).max()))
    if diff > TOLERANCE:
        raise ExportError(
            f"exported model disagrees with PyTorch (max abs diff {diff:.2e} > {TOLERANCE})"
        )
    return diff
