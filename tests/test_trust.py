"""Nothing lost: bad input is refused before anything is written, exports never overwrite a
study, two --force backups in one second are both kept."""

from __future__ import annotations

import shutil

from conftest import REPO, fast_args, run_cli

V1 = REPO / "tests" / "data" / "study_v1.db"


def test_a_start_that_fails_writes_nothing_and_the_fix_then_runs(tmp_path):
    out = tmp_path / "run"
    bad = run_cli("search", "--out", str(out), "--budget", "1", "--data", str(tmp_path / "nope"))
    assert bad.returncode == 2 and len(bad.stderr.strip().splitlines()) == 1, bad.stderr
    assert not (out / "study.db").exists()  # before: written, and the fix refused as "different"
    good = run_cli("search", "--out", str(out), "--budget", "1", "-q", *fast_args())
    assert good.returncode == 0, good.stderr
    a_file = tmp_path / "file"
    a_file.write_text("x")
    res = run_cli("search", "--out", str(a_file), "--budget", "1")
    assert res.returncode == 2 and "is a file" in res.stderr and "Traceback" not in res.stderr


def test_export_never_overwrites_the_study(tmp_path):
    study = tmp_path / "s"
    study.mkdir()
    shutil.copy(V1, study / "study.db")
    before = (study / "study.db").read_bytes()
    for target in ("study.db", "pareto.json", "weights/trial_0.pt", "."):
        res = run_cli("export", str(study), "--trial", "0", "--output", str(study / target))
        assert res.returncode == 2, (target, res.stderr)
        assert "--output" in res.stderr and len(res.stderr.strip().splitlines()) == 1
    assert (study / "study.db").read_bytes() == before


def test_two_forced_restarts_in_one_second_keep_both_backups(tmp_path):
    from hwnas.experiment.config import load_config
    from hwnas.experiment.experiment import prepare_dir

    out = tmp_path / "run"
    out.mkdir()
    shutil.copy(V1, out / "study.db")
    configs = [load_config(None, [], seed=s) for s in (1, 2)]  # each differs from the one there
    for cfg in configs:
        prepare_dir(cfg, out, force=True).close()
    backups = sorted(p.name for p in out.glob("study-*.db.bak"))
    assert len(backups) == 2, backups
