"""The Python twin of ``hwnas search``: run or resume a search, then write its report.

It sits above the loop and the report (persistence does not render HTML), beside the CLI.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from hwnas.experiment.config import ExperimentConfig
from hwnas.experiment.experiment import Experiment, SearchResult
from hwnas.experiment.store import Trial
from hwnas.experiment.study import Study
from hwnas.report.html import write_study_report


def run_search(
    config: ExperimentConfig,
    out_dir: str | Path,
    *,
    force: bool = False,
    on_trial: Callable[[Trial, dict[str, Any]], None] | None = None,
    on_start: Callable[[dict[str, Any]], None] | None = None,
) -> SearchResult:
    """Run (or resume) a search in ``out_dir`` and write ``report.html``."""
    result = Experiment(config, out_dir, force=force, on_trial=on_trial, on_start=on_start).run()
    study = Study(out_dir)
    try:
        result.report = write_study_report(study)
    finally:
        study.close()
    return result
