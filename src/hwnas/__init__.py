"""hwnas: hardware-aware neural architecture search.

The Python API mirrors the CLI::

    import hwnas
    cfg = hwnas.load_config("configs/digits.yaml", ["estimator.epochs=3"], budget=10)
    result = hwnas.run_search(cfg, "runs/demo")          # run or resume
    study = hwnas.Study("runs/demo")                      # read trials and the front
    front = study.pareto()
    hwnas.export("runs/demo", front[0].id, "model.onnx")  # trained model as ONNX

Names are imported lazily so that ``import hwnas`` stays cheap (no torch until needed).
"""

from __future__ import annotations

from typing import Any

from hwnas.core.version import __version__

_EXPORTS = {
    "load_config": "hwnas.experiment.config",
    "validate_config": "hwnas.experiment.config",
    "ExperimentConfig": "hwnas.experiment.config",
    "ConfigError": "hwnas.experiment.config",
    "run_search": "hwnas.api",
    "Experiment": "hwnas.experiment.experiment",
    "SearchResult": "hwnas.experiment.experiment",
    "Interrupted": "hwnas.experiment.experiment",
    "Study": "hwnas.experiment.study",
    "Trial": "hwnas.experiment.store",
    "UserError": "hwnas.core.errors",
    "Fidelity": "hwnas.core.fidelity",
}

__all__ = [*_EXPORTS, "export", "__version__"]


def export(out_dir: str, trial_id: int, output: str, fmt: str = "onnx") -> Any:
    """Export a trained trial; returns (path, max abs diff vs PyTorch)."""
    from hwnas.report.export import export_trial

    return export_trial(out_dir, trial_id, output, fmt=fmt)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        import importlib

        return getattr(importlib.import_module(_EXPORTS[name]), name)
    raise AttributeError(f"module 'hwnas' has no attribute {name!r}")
