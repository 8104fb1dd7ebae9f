"""Every generated bad input (benchmarks/bad_input.py: hostile configs, a wrong value for each
field of each built-in kind, malformed --set, paths, flags, corrupt studies) ends in one line
on stderr and exit 2, with no traceback, and leaves an existing study byte-identical."""

from __future__ import annotations

import sys
from collections import Counter

import pytest
from conftest import REPO

sys.path.insert(0, str(REPO / "benchmarks"))
from bad_input import _prepare, cases, judge, run_in_process, run_subprocess  # noqa: E402


def test_every_bad_input_is_one_line_and_exit_2(tmp_path):
    all_cases = cases(tmp_path)
    per = Counter(c.category.split(" (")[0] for c in all_cases)
    assert len(all_cases) >= 200 and per["config field"] >= 150, per
    misses = []
    for case in all_cases:
        before = _prepare(case)
        code, err, _ = run_in_process(case)
        why = judge(case, code, err, before)
        if why:
            misses.append(f"{case.category}: {case.name}: {why}")
    assert not misses, "\n".join(misses[:20])


@pytest.mark.slow
def test_bad_input_in_real_processes_never_hangs(tmp_path):
    """A sample of the cases as real ``hwnas`` processes, each within 30 s."""
    sample = [c for i, c in enumerate(cases(tmp_path)) if i % 12 == 0]
    for case in sample:
        before = _prepare(case)
        code, err, secs = run_subprocess(case)
        assert judge(case, code, err, before) is None, (case.name, err)
        assert secs < 30


def test_a_closed_stdout_ends_quietly_with_the_work_stored(tmp_path):
    """``hwnas search ... | head -1``: the reader goes away while the search prints; the
    search still finishes and stores everything, and ends without an error line (it said
    "error: Broken pipe" with exit code 2, as if the input were bad)."""
    import json
    import subprocess

    from conftest import run_cli

    out = tmp_path / "s"
    proc = subprocess.Popen(
        [sys.executable, "-m", "hwnas.cli", "search", "--out", str(out), "--budget", "3"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert proc.stdout is not None and proc.stderr is not None
    proc.stdout.close()  # as `head` does once it has its line
    err = proc.stderr.read().decode()
    assert proc.wait(timeout=300) == 1, err
    assert "error" not in err and "Traceback" not in err, err
    trials = json.loads(run_cli("show", str(out), "--json").stdout)
    assert len(trials) == 3 and all(t["status"] == "complete" for t in trials)
    assert (out / "report.html").is_file() and (out / "pareto.json").is_file()


def test_an_unknown_option_points_at_its_commands_help():
    from conftest import run_cli

    res = run_cli("train", "DIR", "--bogus")
    assert res.returncode == 2
    assert (
        res.stderr
        == "hwnas train: error: unrecognized arguments: --bogus; see hwnas train --help\n"
    )
    res = run_cli("--bogus")
    assert res.returncode == 2 and "see hwnas --help" in res.stderr
    # given before the command word, it is no option of that command's
    res = run_cli("--bogus", "search")
    assert res.returncode == 2
    assert res.stderr == "hwnas: error: unrecognized arguments: --bogus; see hwnas --help\n"
