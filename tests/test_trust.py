"""Nothing lost: bad input is refused before anything is written, exports never overwrite a
study, two --force backups in one second are both kept."""

from __future__ import annotations

import os
import shutil

import pytest
from conftest import REPO, fast_args, run_cli

from hwnas.core.errors import ConfigError
from hwnas.experiment.config import load_config

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


@pytest.mark.parametrize(
    ("content", "needle"),
    [
        (b"\x89PNG\r\n\x1a\n\x00\xff\xfe binary", "not a text (UTF-8) YAML file"),
        (("a: " + "[" * 5000 + "]" * 5000 + "\n").encode(), "nested too deeply"),
        (
            b'a: &a ["x","x","x","x","x","x","x","x","x"]\n'
            b"b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\n"
            b"c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
            b"d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\n"
            b"objectives: [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
            "objectives",
        ),
    ],
)
def test_a_hostile_config_file_is_one_short_line(tmp_path, content, needle):
    f = tmp_path / "c.yaml"
    f.write_bytes(content)
    with pytest.raises(ConfigError) as err:
        load_config(f)
    msg = str(err.value)
    assert needle in msg and "\n" not in msg and len(msg) < 400, msg[:400]


@pytest.mark.parametrize(
    ("constraints", "needle"),
    [
        ("['latency_ms <= 1e999']", "must be a finite number"),
        ("['latency_ms <= 1', 'latency_ms >= 2']", "contradict each other"),
        ("['params < 100', 'params > 100']", "contradict each other"),
    ],
)
def test_constraints_that_cannot_hold_together_are_refused(constraints, needle):
    with pytest.raises(ConfigError, match=needle):
        load_config(None, [f"constraints={constraints}"])
    assert load_config(None, ["constraints=['params <= 100', 'params >= 100']"])  # one point


@pytest.mark.parametrize("name", ["hwnas.log", "pareto.json", "report.html", "study.db"])
def test_a_study_file_that_is_a_directory_is_refused_before_writing(tmp_path, name):
    (tmp_path / name).mkdir()
    res = run_cli("search", "--out", str(tmp_path), "--budget", "1", "-q", *fast_args())
    assert res.returncode == 2, res.stderr
    assert f"{name} is a directory" in res.stderr and "Traceback" not in res.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]  # nothing written


def test_a_name_too_long_for_the_file_system_is_one_line(tmp_path):
    res = run_cli("search", "--out", str(tmp_path / ("a" * 300)), "--budget", "1")
    assert res.returncode == 2 and "300 bytes long" in res.stderr, res.stderr
    res = run_cli("profile", "--arch", "@" + str(tmp_path / ("b" * 300)))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


def test_an_image_folder_with_a_symlink_loop_is_scanned_once(tmp_path):
    from hwnas.data.imagefolder import iter_dir

    (tmp_path / "train" / "a").mkdir(parents=True)
    (tmp_path / "train" / "a" / "x.png").write_bytes(b"png")
    (tmp_path / "train" / "a" / "loop").symlink_to(tmp_path / "train")
    found = [parts for parts, _ in iter_dir(tmp_path, lambda parts: parts[-1].endswith(".png"))]
    assert found == [("train", "a", "x.png")]


@pytest.mark.skipif(
    os.geteuid() != 0 or shutil.which("setpriv") is None,
    reason="needs root and setpriv to run as a user who may not write",
)
def test_a_study_in_a_read_only_directory_can_be_shown():
    import json
    import subprocess
    import sys
    import tempfile
    from pathlib import Path

    nobody = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    probe = subprocess.run([*nobody, sys.executable, "-c", "import hwnas"], capture_output=True)
    if probe.returncode != 0:  # this checkout or its venv is not readable by another user
        pytest.skip("another user cannot run hwnas from this checkout")
    base = Path(tempfile.mkdtemp())  # not under pytest's 0700 folder: another user reads it
    out = base / "ro"
    try:
        base.chmod(0o755)
        res = run_cli("search", "--out", str(out), "--budget", "2", "-q", *fast_args())
        assert res.returncode == 0, res.stderr
        for p in [out, *out.rglob("*")]:
            p.chmod(0o555 if p.is_dir() else 0o444)
        before = sorted((p.name, p.stat().st_size) for p in out.iterdir())
        res = subprocess.run(
            [*nobody, sys.executable, "-m", "hwnas.cli", "show", str(out), "--json"],
            capture_output=True,
            text=True,
            cwd="/",
        )
        assert res.returncode == 0, res.stderr
        assert len(json.loads(res.stdout)) == 2
        assert sorted((p.name, p.stat().st_size) for p in out.iterdir()) == before
    finally:
        for p in [out, *out.rglob("*")] if out.exists() else []:
            p.chmod(0o755 if p.is_dir() else 0o644)
        shutil.rmtree(base)


def test_export_writes_the_model_only_once_it_is_checked(tmp_path, monkeypatch):
    """A failed check (or a kill) never leaves a model under the requested name."""
    from hwnas.report import export as E

    study = tmp_path / "s"
    res = run_cli("search", "--out", str(study), "--budget", "1", "-q", *fast_args())
    assert res.returncode == 0, res.stderr
    out = tmp_path / "m.onnx"

    def wrong(*_: object) -> float:
        raise E.ExportError("exported model disagrees with PyTorch")

    monkeypatch.setattr(E, "_check", wrong)
    with pytest.raises(E.ExportError):
        E.export_trial(study, 0, out)
    assert list(tmp_path.glob("*m.onnx*")) == []  # neither the model nor its temporary file
    monkeypatch.undo()
    path, diff = E.export_trial(study, 0, out)
    assert path == out and out.stat().st_size > 0 and diff <= E.TOLERANCE
    assert list(tmp_path.glob(".m.onnx*")) == []
    # a path through a file, or where nothing may be written: the name given, in one line
    with pytest.raises(E.ExportError, match=r"m.onnx is a file, not a directory"):
        E.export_trial(study, 0, out / "x.onnx")
    res = run_cli("export", str(study), "--trial", "0", "-o", "/proc/x.onnx")
    assert res.returncode == 2, res.stderr
    assert "--output /proc/x.onnx: cannot write there (" in res.stderr, res.stderr
    assert ".tmp" not in res.stderr and len(res.stderr.strip().splitlines()) == 1


def _with_stored_config(tmp_path, change) -> str:
    """A copy of the v1 study whose stored config ``change`` has edited."""
    import json
    import sqlite3

    study = tmp_path / "s"
    study.mkdir(parents=True)
    shutil.copy(V1, study / "study.db")
    with sqlite3.connect(study / "study.db") as db:
        (raw,) = db.execute("SELECT value FROM meta WHERE key = 'config'").fetchone()
        cfg = json.loads(raw)
        change(cfg)
        db.execute("UPDATE meta SET value = ? WHERE key = 'config'", (json.dumps(cfg),))
    return str(study)


def test_a_study_made_with_an_option_since_removed_can_still_be_read(tmp_path):
    """Keys a later version no longer has (a top-level one, one in a kind's section) are
    dropped with one warning naming them; the trials stay readable. A stored value that is
    wrong is still refused."""

    def retired(cfg):
        cfg["retired_option"] = 1
        cfg["strategy"]["retired_knob"] = "x"

    res = run_cli("show", _with_stored_config(tmp_path / "a", retired))
    assert res.returncode == 0, res.stderr
    assert res.stderr.strip().splitlines() == [
        f"{tmp_path / 'a' / 's' / 'study.db'}: stored config keys this version no longer has "
        "are ignored: strategy.retired_knob, retired_option"
    ]
    assert "trials" in res.stdout

    def wrong(cfg):
        cfg["seed"] = "not a number"

    res = run_cli("show", _with_stored_config(tmp_path / "b", wrong))
    assert res.returncode == 2 and "stored config is not valid" in res.stderr

    def digits_with_a_path(cfg):  # what `--set data.path=X` stored before it was refused
        cfg["data"].update(name="digits", path="/data/cifar10.tar.gz")

    res = run_cli("show", _with_stored_config(tmp_path / "c", digits_with_a_path))
    assert res.returncode == 0 and res.stderr == "", res.stderr
