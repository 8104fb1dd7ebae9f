"""Bad input, generated: every case must end in one line on stderr and exit code 2.

    python benchmarks/bad_input.py [--subprocess] [--only CATEGORY] [--tag T]

Cases (>= 200): hostile and malformed config files; a wrong value for every field of every
built-in kind's config section (derived from the schema, so new fields are covered as they
come); malformed ``--set``; paths that are missing, the wrong kind or garbage; flags out of
range; corrupt study directories for every command that reads one. Each case checks: exit 2,
no traceback, exactly one line on stderr of at most 300 characters, and a study directory
that existed is byte-identical afterwards. ``--subprocess`` runs each case as its own
``hwnas`` process with a 30 s limit (hangs count); the default runs them in this process
(fast: what ``tests/test_bad_input.py`` does). Prints the count per category and every miss.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import io
import json
import sqlite3
import subprocess
import sys
import tempfile
import time
import typing
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

LIMIT_S = 30
MAX_CHARS = 300


@dataclass
class Case:
    category: str
    name: str
    argv: list[str]
    study: Path | None = None  # a directory that must be left byte-identical
    files: dict[str, bytes] = field(default_factory=dict)  # written before the run


# ------------------------------------------------------------------------- generators
def _wrong_values(annotation: Any) -> list[Any]:
    """Values no field of this type accepts."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin is typing.Literal:
        return ["zz-no-such-choice", 12345]
    if origin in (list, tuple, set):
        return [{"a": 1}, 7]
    if origin is dict:
        return [[1, 2], "not-a-mapping"]
    if annotation is bool:
        return ["maybe", [True]]
    if annotation in (int, float):
        return ["not-a-number", {"a": 1}]
    if annotation is str:
        return [{"a": 1}, [1, 2]]
    if args:  # unions, Optional: something no member takes
        return [{"zz": [1, {"b": 2}]}]
    return [{"zz": [1, {"b": 2}]}]


def field_cases(tmp: Path) -> Iterator[Case]:
    from hwnas.core.registry import FAMILIES
    from hwnas.experiment.config import KIND_SECTIONS

    for section in KIND_SECTIONS:
        reg = FAMILIES[section]
        for kind in reg.builtin_names():
            if kind == "user":  # named by its module path, not by a kind name
                continue
            cls = reg.entry(kind).config
            for fname, finfo in cls.model_fields.items():
                if fname == "name":
                    continue
                for i, value in enumerate(_wrong_values(finfo.annotation)):
                    cfg = {section: {"name": kind, fname: value}}
                    path = tmp / f"f-{section}-{kind}-{fname}-{i}.yaml"
                    yield Case(
                        f"config field ({section})",
                        f"{section}={kind}.{fname}={value!r}"[:80],
                        ["config", "--config", str(path)],
                        files={str(path): json.dumps(cfg).encode()},
                    )


def file_cases(tmp: Path) -> Iterator[Case]:
    deep = "a: " + "[" * 5000 + "]" * 5000
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [*{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}, *{p}]\n"
        for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    texts = {
        "unclosed bracket": "budget: [1, 2\n",
        "tab indent": "budget:\n\ttrials: 3\n",
        "bad mapping": "budget: trials: 3\n",
        "top-level list": "- 1\n- 2\n",
        "top-level scalar": "42\n",
        "unknown section": "nonsense: {a: 1}\n",
        "unknown key in budget": "budget: {trials: 3, nope: 1}\n",
        "unknown kind": "space: {name: no-such-space}\n",
        "objective on unknown metric": "objectives: {flux: max}\n",
        "constraint unparsable": "constraints: ['latency_ms <<= 3']\n",
        "constraint on unknown metric": "constraints: ['flux <= 3']\n",
        "contradictory constraints": "constraints: ['params <= 10', 'params >= 20']\n",
        "infinite bound": "constraints: ['params <= 1e999']\n",
        "deeply nested": deep,
        "alias bomb": bomb,
        "very long key": "x" * 100_000 + ": 1\n",
        "very long value": "seed: " + "9" * 100_000 + "\n",
        "negative seed": "seed: -1\n",
        "budget zero": "budget: {trials: 0}\n",
        "duplicate objective": "objectives: [{metric: accuracy, direction: max}, "
        "{metric: accuracy, direction: min}]\n",
    }
    for name, text in texts.items():
        path = tmp / f"file-{len(name)}-{abs(hash(name)) % 10_000}.yaml"
        yield Case(
            "config file", name, ["config", "--config", str(path)], files={str(path): text.encode()}
        )
    binary = tmp / "binary.yaml"
    yield Case(
        "config file",
        "binary",
        ["config", "--config", str(binary)],
        files={str(binary): bytes(range(256)) * 4},
    )
    yield Case("config file", "missing", ["config", "--config", str(tmp / "missing.yaml")])
    yield Case("config file", "a directory", ["config", "--config", str(tmp)])


def set_cases(tmp: Path) -> Iterator[Case]:
    for value in [
        "noequals",
        "=3",
        "budget.trials=",
        "estimator.epochs=[1, 2",
        "space=no-such-kind",
        "nope.nothing=1",
        "budget.trials=many",
        "estimator.lr=-1",
        "estimator.lr=nan",
        "data.val_fraction=0.95",
        "target.runs=0",
        "executor.workers=0",
        "objectives=[]",
        "constraints='latency_ms'",
        "seed=" + "9" * 5000,
        "budget.trials=" + "[" * 3000,
    ]:
        yield Case("--set", value, ["config", "--set", value])


def flag_cases(tmp: Path) -> Iterator[Case]:
    out = str(tmp / "flags-out")
    for argv in [
        ["search", "--budget", "0", "--out", out],
        ["search", "--budget", "-5", "--out", out],
        ["search", "--budget", "many", "--out", out],
        ["search", "--seed", "-1", "--out", out],
        ["search", "--workers", "0", "--out", out],
        ["search", "--device", "tpu", "--out", out],
        ["search", "--no-such-flag"],
        ["no-such-command"],
        ["train", "--epochs", "0", "--arch", "airbench94", "--out", out],
        ["train", "--trial", "1"],
        ["export", str(tmp), "--trial", "x", "--output", "m.onnx"],
        ["profile", "--arch", "{not json", "--target", "analytic"],
        ["profile", "--dir", str(tmp)],
        ["config", "--builtin-only"],
        ["config", "--set", "estimator=zero_cost", "--set", "estimator.proxy=naswot"],
        ["config", "--set", "pruner.percentile=150", "--set", "pruner=median"],
        ["search", "--set", "data=digits", "--data", str(tmp / "c10.tar.gz"), "--out", out],
        ["config", "--set", "data.path=/data/cifar10"],
    ]:
        yield Case("flags", " ".join(argv)[:80], argv)


def path_cases(tmp: Path) -> Iterator[Case]:
    a_file = tmp / "plain-file"
    garbage = tmp / "garbage.tar.gz"
    empty_dir = tmp / "empty-data"
    files = {str(a_file): b"x", str(garbage): b"\x1f\x8b" + b"nonsense" * 100}
    yield Case("paths", "--out is a file", ["search", "--out", str(a_file)], files=files)
    yield Case(
        "paths", "--data missing", ["search", "--out", str(tmp / "p1"), "--data", str(tmp / "nope")]
    )
    yield Case(
        "paths",
        "--data garbage tar",
        ["search", "--out", str(tmp / "p2"), "--data", str(garbage)],
        files=files,
    )
    yield Case(
        "paths",
        "--data empty folder",
        [
            "search",
            "--out",
            str(tmp / "p3"),
            "--set",
            "data=imagefolder",
            "--set",
            f"data.path={empty_dir}",
        ],
        files={str(empty_dir / ".keep"): b""},
    )
    yield Case("paths", "--out name too long", ["search", "--out", str(tmp / ("n" * 300))])
    yield Case("paths", "--config is a directory", ["config", "--config", str(tmp)])
    spec = tmp / "broken-spec.json"
    yield Case(
        "paths",
        "device spec not YAML",
        ["config", "--set", "target=device", "--set", f"target.spec={spec}"],
        files={str(spec): b"a: [1,\n  b: }\n"},
    )
    yield Case("paths", "profile --arch @missing", ["profile", "--arch", f"@{tmp / 'nope.json'}"])
    yield Case("paths", "profile --arch @dir", ["profile", "--arch", f"@{tmp}"])
    yield Case("paths", "profile --onnx garbage", ["profile", "--onnx", str(a_file)], files=files)
    # a file of another kind: the library's own error runs to several lines
    js = tmp / "spec.json"
    jfiles = {str(js): b'{"stages": [1]}'}
    yield Case("paths", "profile --onnx a JSON file", ["profile", "--onnx", str(js)], files=jfiles)
    for key in ("estimator.weights", "supernet.weights"):
        kind = ["--set", "estimator=supernet"] if key.startswith("estimator") else []
        kind += ["--set", "strategy=spos"] if key.startswith("supernet") else []
        yield Case(
            "paths",
            f"{key} a JSON file",
            ["search", "--out", str(tmp / f"p-{key}"), *kind, "--set", f"{key}={js}"],
            files=jfiles,
        )
    yield Case("paths", "show missing dir", ["show", str(tmp / "no-study")])
    yield Case("paths", "report missing dir", ["report", str(tmp / "no-study")])
    yield Case(
        "paths",
        "train --arch @missing",
        ["train", "--arch", f"@{tmp / 'nope.json'}", "--out", str(tmp / "p4")],
    )
    yield Case(
        "paths",
        "table missing",
        [
            "search",
            "--out",
            str(tmp / "p5"),
            "--set",
            "estimator=tabular",
            "--set",
            f"estimator.path={tmp / 'none.csv'}",
        ],
    )


def _study_bytes(kind: str) -> bytes:
    """A corrupt study.db of the given kind."""
    if kind == "garbage":
        return b"this is not a database" * 100
    if kind == "truncated":
        return b"SQLite format 3\x00" + b"\x00" * 50
    with tempfile.TemporaryDirectory() as d:
        p = Path(d) / "s.db"
        db = sqlite3.connect(p)
        if kind == "other tables":
            db.execute("CREATE TABLE people (name TEXT)")
        else:
            db.execute("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT)")
            db.execute("CREATE TABLE trials (id INTEGER PRIMARY KEY)")
            if kind == "future schema":
                db.execute("INSERT INTO meta VALUES ('schema_version', '99')")
            elif kind == "config not json":
                db.execute("INSERT INTO meta VALUES ('schema_version', '2')")
                db.execute("INSERT INTO meta VALUES ('config', '{not json')")
            elif kind == "config invalid":
                db.execute("INSERT INTO meta VALUES ('schema_version', '2')")
                db.execute("INSERT INTO meta VALUES ('config', '{\"space\": {\"name\": 5}}')")
            elif kind == "no config":
                db.execute("INSERT INTO meta VALUES ('schema_version', '2')")
        db.commit()
        db.close()
        return p.read_bytes()


def study_cases(tmp: Path) -> Iterator[Case]:
    kinds = [
        "garbage",
        "truncated",
        "other tables",
        "future schema",
        "config not json",
        "config invalid",
        "no config",
    ]
    for kind in kinds:
        for cmd in ("show", "report", "export", "search", "train"):
            d = tmp / f"study-{kind.replace(' ', '_')}-{cmd}"
            argv = {
                "show": ["show", str(d)],
                "report": ["report", str(d)],
                "export": [
                    "export",
                    str(d),
                    "--trial",
                    "0",
                    "--output",
                    str(tmp / f"{d.name}.onnx"),
                ],
                "search": ["search", "--out", str(d), "--budget", "1"],
                "train": ["train", str(d), "--trial", "0"],
            }[cmd]
            yield Case(
                f"corrupt study ({cmd})",
                kind,
                argv,
                study=d,
                files={str(d / "study.db"): _study_bytes(kind)},
            )


GENERATORS: dict[str, Callable[[Path], Iterator[Case]]] = {
    "fields": field_cases,
    "files": file_cases,
    "set": set_cases,
    "flags": flag_cases,
    "paths": path_cases,
    "studies": study_cases,
}


def cases(tmp: Path, only: str | None = None) -> list[Case]:
    out: list[Case] = []
    for name, gen in GENERATORS.items():
        if only is None or only == name:
            out.extend(gen(tmp))
    return out


# ------------------------------------------------------------------------------ running
def _tree_hash(d: Path) -> str:
    h = hashlib.sha256()
    for p in sorted(d.rglob("*")):
        h.update(str(p.relative_to(d)).encode())
        if p.is_file():
            h.update(p.read_bytes())
    return h.hexdigest()


def _prepare(case: Case) -> str | None:
    for path, data in case.files.items():
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        Path(path).write_bytes(data)
    return _tree_hash(case.study) if case.study is not None else None


def run_in_process(case: Case) -> tuple[int | None, str, float]:
    from hwnas.cli import main

    err = io.StringIO()
    t0 = time.perf_counter()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code: int | None = main(case.argv)
        except SystemExit as exc:  # argparse
            code = exc.code if isinstance(exc.code, int) else 2
        except BaseException as exc:  # noqa: BLE001 - what the suite exists to catch
            return None, f"Traceback: {type(exc).__name__}: {exc}", time.perf_counter() - t0
    return code, err.getvalue(), time.perf_counter() - t0


def run_subprocess(case: Case) -> tuple[int | None, str, float]:
    t0 = time.perf_counter()
    try:
        res = subprocess.run(
            [sys.executable, "-m", "hwnas.cli", *case.argv],
            capture_output=True,
            text=True,
            timeout=LIMIT_S,
        )
    except subprocess.TimeoutExpired:
        return None, "hang: over 30 s", time.perf_counter() - t0
    return res.returncode, res.stderr, time.perf_counter() - t0


def judge(case: Case, code: int | None, err: str, before: str | None) -> str | None:
    """None when the case was handled as it must be; else what went wrong."""
    lines = err.strip().splitlines()
    if code is None or "Traceback" in err:
        return f"traceback or hang: {err.strip()[-300:]}"
    if code != 2:
        return f"exit {code}"
    if len(lines) != 1:
        return f"{len(lines)} lines: {err.strip()[:300]}"
    if len(lines[0]) > MAX_CHARS:
        return f"{len(lines[0])} characters: {lines[0][:120]}..."
    if case.study is not None and before != _tree_hash(case.study):
        return "the study directory changed"
    return None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--subprocess", action="store_true", help="one hwnas process per case")
    ap.add_argument("--only", choices=list(GENERATORS))
    ap.add_argument("--tag", default="")
    args = ap.parse_args()
    runner = run_subprocess if args.subprocess else run_in_process
    per: Counter[str] = Counter()
    bad: Counter[str] = Counter()
    misses = []
    slowest = 0.0
    with tempfile.TemporaryDirectory() as d:
        for case in cases(Path(d), args.only):
            before = _prepare(case)
            code, err, secs = runner(case)
            slowest = max(slowest, secs)
            per[case.category] += 1
            why = judge(case, code, err, before)
            if why:
                bad[case.category] += 1
                misses.append({"category": case.category, "case": case.name, "why": why})
                print(f"MISS {case.category}: {case.name}: {why}", flush=True)
    total = sum(per.values())
    print(
        f"{total} cases, {total - len(misses)} handled ({len(misses)} missed); slowest {slowest:.1f} s"
    )
    for cat in sorted(per):
        print(f"  {cat}: {per[cat] - bad[cat]}/{per[cat]}")
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _common import save

    save(
        "bad_input" + (f"-{args.tag}" if args.tag else ""),
        {
            "mode": "subprocess" if args.subprocess else "in-process",
            "cases": total,
            "handled": total - len(misses),
            "per_category": {c: {"cases": per[c], "handled": per[c] - bad[c]} for c in sorted(per)},
            "slowest_seconds": round(slowest, 2),
            "misses": misses,
        },
    )


if __name__ == "__main__":
    main()
