"""The ``hwnas`` command line: search, show, report, export.

Bad input never ends in a traceback: it is one line naming what is wrong, and exit code 2.
Ctrl-C during a search saves what finished and exits 130. Heavy imports (torch, onnx) happen
only inside the commands that need them, so ``hwnas --help`` and ``hwnas show`` answer fast.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import re
import signal
import sys
import typing
from pathlib import Path
from typing import Any

from hwnas.core.errors import UserError
from hwnas.core.metrics import fmt_ms, fmt_number

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 1  # as Rich (which prints the tables) exits on a closed stdout


class UsageError(UserError):
    """A user-facing one-line error (exit 2)."""


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (and exit 2) like every other bad input."""

    def error(self, message: str) -> typing.NoReturn:
        self.exit(EXIT_USAGE, f"{self.prog}: error: {message}; see {self.prog} --help\n")

    def parse_args(self, args: typing.Any = None, namespace: typing.Any = None) -> typing.Any:
        """An unknown option is named with its command's help (`hwnas train --help`): plain
        argparse reports it from the top-level parser, pointing at `hwnas --help`."""
        argv = list(sys.argv[1:] if args is None else args)
        ns, extra = self.parse_known_args(argv, namespace)
        if extra:
            cmd = getattr(ns, "command", None)
            action = getattr(ns, f"{cmd}_command", None)  # `hwnas lut build`
            words = (self.prog, cmd, action)
            if cmd in argv and extra[0] in argv and argv.index(extra[0]) < argv.index(cmd):
                words = (self.prog, None, None)  # `hwnas --bogus search`: not search's option
            prog = " ".join(str(w) for w in words if w)
            self.exit(
                EXIT_USAGE,
                f"{prog}: error: unrecognized arguments: {' '.join(extra)}; see {prog} --help\n",
            )
        return ns


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="hwnas",
        description="Hardware-aware neural architecture search: real training, real measured "
        "latency, a Pareto front of accuracy vs. cost.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND")

    s = sub.add_parser(
        "search",
        help="run or resume a search",
        description="Run a search; the same command on an existing --out resumes it.",
    )
    s.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="YAML config (default, without --set: the config a study in --out stored, to "
        "resume or extend it; else the embedded default: digits, chain space, cpu-ort, "
        "evolution)",
    )
    s.add_argument(
        "--out",
        "-o",
        metavar="DIR",
        default="runs/default",
        help="experiment directory (default: runs/default)",
    )
    s.add_argument("--budget", type=int, metavar="N", help="distinct architectures to evaluate")
    s.add_argument("--seed", type=int, metavar="S", help="random seed")
    s.add_argument(
        "--data",
        metavar="PATH",
        help="dataset path (sets data.path; an unset data.name becomes cifar10)",
    )
    s.add_argument("--device", choices=["cpu", "cuda"], help="where candidates train")
    s.add_argument(
        "--workers",
        type=int,
        metavar="N",
        help="evaluate N trials at once in worker processes (executor.name=process)",
    )
    s.add_argument(
        "--set",
        dest="overrides",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="override a config key, e.g. --set estimator.epochs=3 or --set strategy=random",
    )
    s.add_argument(
        "--force",
        action="store_true",
        help="start over in a DIR that holds a different experiment (the old study is kept as a backup)",
    )
    s.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    sh = sub.add_parser("show", help="list the trials of a search")
    sh.add_argument("dir", metavar="DIR")
    sh.add_argument("--json", action="store_true", help="print all trials as a JSON list")
    sh.add_argument(
        "--all",
        action="store_true",
        help="list every trial (default: Pareto front and the latest 20)",
    )

    r = sub.add_parser("report", help="write DIR/report.html (and DIR/pareto.json)")
    r.add_argument("dir", metavar="DIR")
    r.add_argument(
        "--output",
        "-o",
        metavar="FILE",
        help="write the report here instead, touching nothing in DIR (a study read elsewhere)",
    )
    r.add_argument("--force", action="store_true", help="replace an --output that is no report")

    e = sub.add_parser("export", help="export a trained trial's model")
    e.add_argument("dir", metavar="DIR")
    e.add_argument("--trial", type=int, required=True, metavar="ID")
    e.add_argument("--format", choices=["onnx"], default="onnx")
    e.add_argument("--output", "-o", required=True, metavar="FILE")
    e.add_argument("--force", action="store_true", help="replace an existing --output file")
    e.add_argument(
        "--dynamic-batch",
        action="store_true",
        help="a batch dimension sized by each call (default: batch 1, as timed)",
    )
    e.add_argument(
        "--no-preprocessing",
        action="store_true",
        help="export the bare net (it expects normalised inputs); default: the file takes "
        "float32 NCHW pixel / 255 and normalises inside",
    )

    pr = sub.add_parser(
        "profile",
        help="every cost of one model on a target",
        description="Analytic costs and measured latency of one model: an arch of the configured "
        "space, an ONNX file, or a trial of a study.",
    )
    what = pr.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--arch", metavar="JSON", help="arch as JSON (or @file.json) in the --config space"
    )
    what.add_argument("--onnx", metavar="FILE", help="an ONNX model (cpu-ort)")
    what.add_argument("--dir", metavar="DIR", help="a study directory (with --trial)")
    pr.add_argument("--trial", type=int, metavar="ID")
    pr.add_argument(
        "--input-shape",
        metavar="C,H,W",
        help="the input's dimensions past the batch: with --onnx for a file exported with "
        "dynamic ones (default: as the file declares them); with --arch instead of the data's "
        "(default: the config's data; a reference net without --config: 3,32,32)",
    )
    pr.add_argument(
        "--target",
        "-t",
        metavar="T",
        help="cpu-ort | cpu-torch | cuda-torch | analytic | device | ... (default: the "
        "config's); configure it with --set target.KEY=VALUE",
    )
    pr.add_argument("--config", "-c", metavar="FILE")
    pr.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    pr.add_argument("--json", action="store_true", help="print the costs as JSON")

    ag = sub.add_parser(
        "agent",
        help="time ONNX models sent over HTTP (run on the device; target `remote`)",
        description="Hardware in the loop: run this on the device; searches elsewhere use "
        "`target: {name: remote, url: ..., token: ...}`. See docs/remote.md.",
    )
    agsub = ag.add_subparsers(dest="agent_command", metavar="ACTION", required=True)
    sv = agsub.add_parser("serve", help="serve until interrupted")
    sv.add_argument("--host", default="127.0.0.1", help="bind address (default: 127.0.0.1)")
    sv.add_argument("--port", type=int, default=8765, help="port (default: 8765; 0: any free)")
    sv.add_argument(
        "--token",
        metavar="T",
        help="required from every client; other users can see it in the process list, so "
        "prefer --token-file or the HWNAS_AGENT_TOKEN environment variable",
    )
    sv.add_argument("--token-file", metavar="FILE", help="read the token from FILE")
    sv.add_argument(
        "--max-bytes",
        type=int,
        default=64 * 2**20,
        metavar="N",
        help="largest model accepted (default: 64 MiB); larger requests get 413",
    )
    sv.add_argument(
        "--max-input",
        type=int,
        default=2**24,
        metavar="N",
        help="most values a model's input tensor may hold, batch included (default: 2^24, "
        "64 MiB of float32); a model declaring more gets 413",
    )
    sv.add_argument(
        "--threads",
        type=int,
        default=1,
        metavar="N",
        help="ONNX Runtime intra-op threads unless a request asks (default: 1)",
    )
    sv.add_argument(
        "--time-limit",
        type=float,
        default=60.0,
        metavar="S",
        help="seconds one measurement may take; a model that runs longer (an endless Loop) "
        "is stopped and refused, and the next request is served (default: 60)",
    )

    lu = sub.add_parser(
        "lut",
        help="latency lookup table: build it, or judge it against measurement",
        description="FBNet-style latency lookup table for the config's space on the runtime "
        "its target names (cpu-ort, cpu-torch, cuda-torch, a `remote` or `command` board, or a "
        "`lut` target). Tables live in "
        "$HWNAS_CACHE/lut (default ~/.cache/hwnas/lut), one per target fingerprint.",
    )
    lusub = lu.add_subparsers(dest="lut_command", metavar="ACTION", required=True)
    lb = lusub.add_parser("build", help="measure every block and fit the overhead (resumable)")
    le = lusub.add_parser(
        "eval", help="measure N random archs end to end and compare with the table (JSON)"
    )
    for q in (lb, le):
        q.add_argument("--config", "-c", required=True, metavar="FILE", help="hwnas YAML config")
        q.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
        q.add_argument("--dir", metavar="DIR", help="table directory (overrides the default)")
        q.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    le.add_argument("--n", type=int, required=True, metavar="N", help="archs to measure")
    le.add_argument("--seed", type=int, default=0, metavar="S", help="sampling seed")
    le.add_argument(
        "--repeats",
        type=int,
        default=3,
        metavar="R",
        help="measure each arch in R sweeps, keeping the fastest (a shared CPU's noise only "
        "adds time); between sweeps the table takes one more reading of each entry (default 3)",
    )
    le.add_argument(
        "--max-repeats",
        type=int,
        metavar="M",
        help="archs whose two fastest readings still differ by more than 5 %% get further "
        "sweeps, up to M in all: a noisy machine is measured longer, not judged on its noise "
        "(default: 6, or R if more)",
    )
    le.add_argument("--json", action="store_true", help="print the figures as JSON (the default)")
    le.add_argument("--text", action="store_true", help="print one sentence instead of the JSON")

    pd = sub.add_parser(
        "predictor",
        help="learned latency predictor: train it on measurements, judge it on held-out rows",
        description="nn-Meter-style latency predictor (kernel-level features, ridge + boosted "
        "trees). Train it from a CSV of measurements (--data), or let it measure random archs of "
        "a config's space on the config's target (--config with --n). Both print JSON figures "
        "on the rows not used for training: within_10pct, kendall_tau, rmse_ms, mape, n.",
    )
    pdsub = pd.add_subparsers(dest="predictor_command", metavar="ACTION", required=True)
    pt = pdsub.add_parser(
        "train",
        help="fit a predictor and write it to --output (.npz)",
        description="From a table: --data CSV --arch-column C --target-column C --train-size N "
        "[--space fbnet|cell|chain]. On a target: --config FILE --n N [--train-size M] measures "
        "N random archs of the config's space on its target (cpu-ort, cpu-torch, cuda-torch, "
        "remote, command), saves them as CSV (--save-data) and trains on M of them.",
    )
    pt.add_argument(
        "--data", metavar="CSV", help="measurements, one arch per row (.csv or .csv.gz)"
    )
    pt.add_argument(
        "--arch-column",
        default="arch",
        metavar="C",
        help="column with the arch: the space's key (FBNet `0 3 8 ...`, an NB201 string) or "
        "JSON (default: arch)",
    )
    pt.add_argument(
        "--target-column",
        default="latency_ms",
        metavar="C",
        help="column with the measured latency in ms (default: latency_ms)",
    )
    pt.add_argument(
        "--train-size",
        type=int,
        metavar="N",
        help="rows drawn (seeded) for training; the rest are held out "
        "(default: 80 %% of the rows, at most 500)",
    )
    pt.add_argument(
        "--space",
        choices=["fbnet", "cell", "chain"],
        help="space of the archs (default: the config's, else guessed from the first arch)",
    )
    pt.add_argument(
        "--input-shape",
        metavar="C,H,W",
        help="network input the latencies were measured at (default: fbnet 3,224,224; "
        "cell 3,32,32; chain 1,8,8; with --config: its data)",
    )
    pt.add_argument(
        "--num-classes", type=int, metavar="K", help="classifier outputs (default as above)"
    )
    pt.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="hwnas YAML config: space (and, without --data, the data and target to measure on)",
    )
    pt.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    pt.add_argument("--n", type=int, metavar="N", help="archs to measure on the config's target")
    pt.add_argument(
        "--save-data",
        metavar="CSV",
        help="where measured archs are written (default: --output with .csv)",
    )
    pt.add_argument("--output", "-o", required=True, metavar="FILE", help="predictor file (.npz)")
    pt.add_argument("--seed", type=int, default=0, metavar="S", help="split and fit seed")
    pt.add_argument(
        "--trees",
        choices=["auto", "on", "off"],
        default="auto",
        help="residual boosted trees: auto (chosen by cross-validation), on, off",
    )
    pt.add_argument("--quiet", "-q", action="store_true", help="no progress bar")
    pe = pdsub.add_parser(
        "eval",
        help="judge a predictor on the rows it was not trained on (JSON)",
        description="Rows of --data (default: the predictor's own training table) whose arch "
        "the predictor never saw are predicted and compared with their measurement.",
    )
    pe.add_argument("--model", "-m", required=True, metavar="FILE", help="predictor file (.npz)")
    pe.add_argument("--data", metavar="CSV", help="measurements (default: the training table)")
    pe.add_argument("--arch-column", metavar="C", help="default: the one used in training")
    pe.add_argument("--target-column", metavar="C", help="default: the one used in training")
    pe.add_argument(
        "--config",
        "-c",
        metavar="FILE",
        help="measure the held-out archs once more on this config's target and report the "
        "noise floor: how often that reading agrees with the table's within +-10 %%",
    )
    pe.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    pe.add_argument("--seed", type=int, default=0, metavar="S", help="seed of the re-measuring")
    pe.add_argument("--quiet", "-q", action="store_true", help="no progress bar")

    tr = sub.add_parser(
        "train",
        help="train one net with the final recipe and store it in a study",
        description="Train a trial of a study (DIR --trial N), an arch (--arch JSON, @file.json "
        "or a reference net: airbench94, airbench96) stand-alone with the final recipe; the "
        "runs are stored in the study as stage 'final' with test accuracy and measured costs.",
    )
    tr.add_argument("dir", nargs="?", metavar="DIR", help="a study directory")
    tr.add_argument("--trial", type=int, metavar="N", help="the trial of DIR to train again")
    tr.add_argument("--arch", metavar="SPEC", help="JSON, @file.json or a reference net's name")
    tr.add_argument("--config", "-c", metavar="FILE", help="config of a new study (with --out)")
    tr.add_argument(
        "--out",
        "-o",
        metavar="DIR",
        default=None,
        help="study directory for --config (default: runs/train)",
    )
    tr.add_argument(
        "--repeats", type=int, metavar="R", help="trainings (seeds); default: final.repeats, else 1"
    )
    tr.add_argument(
        "--epochs", type=int, metavar="E", help="default: final.epochs, else the estimator's"
    )
    tr.add_argument(
        "--timing-rounds",
        type=int,
        metavar="K",
        help="after training a trial of a study with reference nets: rounds in which every "
        "net with final trainings is timed again side by side for the verdict on them "
        "(default: final.timing_rounds; 0 skips it, e.g. for all but the last of several "
        "nets trained one after another)",
    )
    tr.add_argument("--data", metavar="PATH", help="dataset path (with --config)")
    tr.add_argument("--device", choices=["cpu", "cuda"], help="where to train (with --config)")
    tr.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    tr.add_argument("--force", action="store_true", help="replace a different study in --out")
    tr.add_argument("--json", action="store_true", help="print the stored trials as JSON")
    tr.add_argument("--quiet", "-q", action="store_true", help="no progress lines")

    c = sub.add_parser("config", help="print the effective config (after --set) as YAML")
    c.add_argument("--config", "-c", metavar="FILE")
    c.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE")
    c.add_argument(
        "--reference", action="store_true", help="print the configuration reference (Markdown)"
    )
    c.add_argument(
        "--builtin-only",
        action="store_true",
        help="with --reference: leave installed plugins out (as docs/configuration.md does)",
    )
    return p


# -------------------------------------------------------------------- commands
def _resume_where_it_ran(args: argparse.Namespace, base: dict[str, Any]) -> None:
    """A study resumed with its own config from another directory: its relative paths (data,
    tables) name files from where it ran, so this process works from there (``--out`` made
    absolute first). Read as from here, they do not exist, and a path made absolute would
    change the config the trials are keyed by."""
    from hwnas.experiment.store import Store
    from hwnas.experiment.study import rebased

    out = Path(args.out).resolve()
    with Store(out / Store.FILENAME, create=False, readonly=True) as store:
        start = store.get_meta_json("start_dir")
    if not isinstance(start, str) or Path(start) == Path.cwd() or not Path(start).is_dir():
        return
    if rebased(base, start) == base:  # every path resolves from here (or from nowhere)
        return
    args.out = str(out)
    os.chdir(start)
    if not args.quiet:
        print(f"reading its relative paths from {start}, where it ran", file=sys.stderr)


def _stored_config(out: str) -> dict[str, Any] | None:
    """The config the study in ``out`` stored, as data; None where there is none this version
    reads (the search then says why, or starts a new study)."""
    from hwnas.experiment.store import Store, StoreError, holds_tables
    from hwnas.experiment.study import stored_config

    path = Path(out) / Store.FILENAME
    try:
        if not path.is_file() or not holds_tables(path):
            return None
    except OSError:  # a name too long, say: the search says so in its own words
        return None
    try:
        with Store(path, readonly=True) as store:
            raw = store.get_meta_json("config")
            return None if raw is None else stored_config(path, raw).to_json_dict()
    except StoreError:
        return None


def _cmd_search(args: argparse.Namespace) -> int:
    from hwnas.core.errors import ConfigError
    from hwnas.experiment.config import load_config

    overrides = list(args.overrides)
    # no --config nor --set on a study's folder: resume (or extend) it with its own config
    # (--set items without --config go on the default, as they always did)
    base = _stored_config(args.out) if args.config is None and not overrides else None
    if base is not None and not args.quiet:
        print(f"using the config stored in {args.out} (no --config given)", file=sys.stderr)
    if base is not None and args.data is None:
        _resume_where_it_ran(args, base)
    if args.workers is not None:
        if args.workers < 1:
            raise ConfigError("--workers: must be at least 1")
        # trials in flight: a Ray run stays on Ray, otherwise processes beyond one
        named = load_config(args.config, overrides, base=base, data_path=args.data).executor.name
        kind = named if named == "ray" else ("process" if args.workers > 1 else "inprocess")
        overrides += [f"executor.name={kind}", f"executor.workers={args.workers}"]
    cfg = load_config(
        args.config,
        overrides,
        base=base,
        budget=args.budget,
        seed=args.seed,
        data_path=args.data,
        device=args.device,
    )
    from rich.console import Console

    from hwnas.api import run_search
    from hwnas.experiment.experiment import Interrupted
    from hwnas.hardware.host_load import sharing_warning

    # once the study is ours (a refused start says nothing of it); not where threads are
    # already shared out, nor where nothing trains (a table looks accuracies up)
    trains = getattr(cfg.estimator, "needs_model", True) or getattr(
        cfg.strategy, "trains_supernet", False
    )
    sharing_checked = not trains or bool(
        os.environ.get("OMP_NUM_THREADS") or getattr(cfg.estimator, "threads", 0)
    )

    def warn_if_sharing() -> None:
        nonlocal sharing_checked
        if not sharing_checked:
            sharing_checked = True
            if (sharing := sharing_warning()) is not None:
                print(f"warning: {sharing}", file=sys.stderr)

    console = Console(stderr=True)
    # without a terminal (CI logs, nohup) a bar draws nothing: one plain line per trial instead
    plain = not args.quiet and not console.is_terminal
    progress, task = _progress(console, cfg.budget.trials, disabled=args.quiet or plain)

    def on_trial(trial: Any, info: dict[str, Any]) -> None:
        if plain and trial is not None:
            acc = trial.metrics.get("accuracy")
            print(
                f"trial {trial.id} {trial.status}"
                + (f" accuracy {acc:.2%}" if isinstance(acc, float) else "")
                + f" ({min(info['done'], info['total'])}/{info['total']}, "
                f"front {info['pareto_size']}) {trial.describe}",
                file=sys.stderr,
                flush=True,
            )
        if progress is None:
            return
        best = info["best_accuracy"]
        progress.update(
            task,
            total=info["total"],  # a resumed study's own budget, where the command named none
            completed=min(info["done"], info["total"]),
            best=f"{best:.2%}" if best is not None else "-",
            pareto=info["pareto_size"],
        )

    # a one-shot strategy's phases (supernet epochs, scored archs) come before the first
    # trial: one bar per phase, then the search's bar
    phases = None if args.quiet or plain else _phase_bars(console)
    phase_tasks: dict[str, Any] = {}

    def on_phase(label: str, done: int, total: int) -> None:
        warn_if_sharing()
        if plain and (done == total or done % max(1, total // 10) == 0):
            print(f"{label}: {done}/{total}", file=sys.stderr, flush=True)
        if phases is None:
            return
        if label not in phase_tasks:
            if not phase_tasks:
                phases.start()
            phase_tasks[label] = phases.add_task(label, total=total)
        phases.update(phase_tasks[label], completed=done, total=total)

    def on_warning(text: str) -> None:
        print(f"warning: {text}", file=sys.stderr, flush=True)

    def on_start(info: dict[str, Any]) -> None:
        warn_if_sharing()
        for w in info.get("warnings", []):
            on_warning(w)
        if phases is not None and phase_tasks:
            phases.stop()
        if progress is not None:
            progress.start()  # only now: set-up errors print without a half-drawn bar
            on_trial(None, info)

    try:
        result = run_search(
            cfg,
            args.out,
            force=args.force,
            on_trial=on_trial,
            on_start=on_start,
            on_phase=on_phase,
            on_warning=on_warning,
        )
    except Interrupted:
        print(
            f"interrupted: the work done is saved in {args.out} (finished trials, a supernet's "
            "last epoch); run the same command to resume",
            file=sys.stderr,
        )
        return EXIT_INTERRUPTED
    finally:
        if progress is not None:
            progress.stop()
        if phases is not None:
            phases.stop()
    why = {
        "budget": "budget reached",
        "time": "time budget reached",
        "exhausted": "no new architectures proposed",
        "strategy": "the strategy finished",
        "device": "stopped: the device failed trials in a row; run again once it answers",
    }.get(result.stopped, result.stopped)
    finals = sum(t.stage == "final" for t in result.trials)  # not what the budget counts
    runs = f" and {finals} final training{'s' if finals > 1 else ''}" if finals else ""
    print(
        f"{len(result.trials) - finals} trials{runs}, Pareto front of {len(result.pareto)} ({why})."
    )
    labelled = [o.metric for o in cfg.objectives if o.metric.startswith("latency_ms@")]
    other_costs = [
        o.metric
        for o in cfg.objectives
        if o.metric not in ("accuracy", "latency_ms", "macs")
        and not o.metric.startswith("latency_ms@")
        and o.direction == "min"
    ]
    from hwnas.experiment.study import along_front

    objectives = [(o.metric, o.direction) for o in cfg.objectives]
    for t in sorted(result.pareto, key=along_front(objectives)):
        m = t.metrics
        lat = (
            f"{fmt_ms(m['latency_ms'])} ms" if "latency_ms" in m else f"{m.get('macs', 0):.0f} MACs"
        )
        for k in labelled:  # every other latency objective (another runtime, a board)
            lat += f", {fmt_ms(m[k])} ms @{k.partition('@')[2]}" if k in m else ""
        for k in other_costs:  # the cost objectives beside latency (model bytes, SRAM...)
            lat += f", {k} {_fmt(m[k], 'g')}" if k in m else ""
        test = f" test {_test_cell(m)}" if "test_accuracy" in m or "final_runs" in m else ""
        if "accuracy" in m:
            score = f"val {m['accuracy']:.2%}"
        else:  # e.g. a zero-cost proxy: the objectives' own figures
            score = " ".join(f"{k} {m[k]:.4g}" for k in _objective_names(cfg) if k in m)
        print(f"  #{t.id:<4} {score}{test}  {lat}  {t.describe}")
    truth = result.summary
    if truth.get("hypervolume_regret") is not None:
        print(
            f"hypervolume regret vs the true front: {truth['hypervolume_regret']:.4f} "
            f"({truth['true_front_found']} of {truth['true_front_size']} true-front points found)"
        )
    for line in [*_model_lines(truth), *_reference_lines(truth, result.trials, objectives)]:
        print(line)
    print(f"report: {result.report}")
    return _ending(result)


def _arch_cell(t: Any) -> str:
    """A trial's arch (and error) as Rich markup: what it is made of, escaped (FBNet's
    ``16[k3e1,skip]`` read as markup lost every bracket, and three one-shot nets showed the
    same widths alone), after the setting a one-shot net was derived for."""
    from rich.markup import escape

    from hwnas.report.plots import fmt_arch

    text = escape(fmt_arch({"describe": t.describe, "info": t.info}))
    return text + (f"  [red]{escape(t.error)}[/]" if t.error else "")


def _reference_lines(
    summary: dict[str, Any], trials: list[Any], objectives: typing.Sequence[tuple[str, str]]
) -> list[str]:
    """The final stage's verdict on each net the search started from: which searched nets
    dominate it on final test accuracy and the other objectives (latencies as timed side by
    side after the final trainings, where they were), so a user need not compare the table
    by hand. The figures it decided on are shown (the table holds the search's own), and
    where nothing dominates, the searched nets at least as accurate, so the reason shows."""
    from hwnas.experiment.final import final_nets, timed_together

    by_id = {t.id: t for t in trials}
    costs = [m for m, _ in objectives if m != "accuracy"]

    def figures(i: int, together: list[str]) -> str:
        m = by_id[i].metrics
        out = [f"test {_fmt(m.get('final_test_accuracy'), 'pct')}"]
        for k in costs:
            final = k in together and timed_together(k, by_id[i])
            v = m.get(f"final_{k}") if final else m.get(k)
            own = " (the search's reading)" if k in together and not final else ""
            out.append(f"{k} {_fmt(v, 'ms' if k.startswith('latency') else 'g')}{own}")
        return ", ".join(out)

    lines = []
    for v in summary.get("references", []):
        r = v["reference"]
        together = v.get("side_by_side", [])
        ref = f"reference #{r} ({v['describe']}, {figures(r, together)})"
        how = (
            f"{', '.join(together)}: medians of readings taken side by side after the final "
            "trainings"
            if together
            else "costs as the search measured them"
        )
        if v["dominated_by"]:
            beaten = ", ".join(f"#{i} ({figures(i, together)})" for i in v["dominated_by"])
            lines.append(f"{ref}: dominated by {beaten} on test accuracy and every cost ({how})")
            continue
        floor = by_id[r].metrics.get("final_test_accuracy", 1.0)
        rivals = sorted(
            (
                t
                for t in final_nets(trials)
                if t.info.get("op") != "start"
                and t.arch_hash != by_id[r].arch_hash  # the reference's own net, promoted
                and t.metrics.get("final_test_accuracy", -1.0) >= floor
            ),
            key=lambda t: -t.metrics["final_test_accuracy"],
        )[:3]
        near = "; as accurate, not as cheap: " + ", ".join(
            f"#{t.id} ({figures(t.id, together)})" for t in rivals
        )
        lines.append(
            f"{ref}: no searched net with final trainings dominates it ({how})"
            + (near if rivals else "")
        )
    return lines


def _model_lines(summary: dict[str, Any]) -> list[str]:
    """How far the run's models can be trusted: the strategy's surrogate, judged on the archs
    it picked before they were evaluated, and latency readings kept although other trainings
    shared the host; and what a one-shot search's theta epochs cost."""
    lines = [
        f"surrogate, held out ({fig['n']} archs it picked): {metric} Spearman "
        f"{fig['spearman']}, mean abs error {fig['mae']:.4g}"
        for metric, fig in summary.get("surrogate", {}).items()
    ]
    if sn := summary.get("supernet_search"):

        def untold(n: int) -> str:
            return f" ({n} epochs from before times were kept not counted)" if n else ""

        def span(seconds: float) -> str:  # a phase of seconds read as "0.0 min"
            return f"{seconds:.0f} s" if seconds < 60 else f"{seconds / 60:.1f} min"

        parts = []
        if "warmup_reused" in sn:
            parts.append(f"warm-up weights from {sn['warmup_reused']}")
        elif "warmup_epochs" in sn:  # SPOS's whole supernet training is its warm-up
            late = sn["warmup_epochs"] - sn["warmup_epochs_timed"]
            parts.append(
                f"{sn['warmup_epochs']} warm-up epochs, {span(sn['warmup_seconds'])}{untold(late)}"
            )
        if sn["epochs"]:
            late = sn["epochs"] - sn["epochs_timed"]
            parts.append(
                f"{sn['epochs']} theta epochs over {sn['settings']} setting(s), "
                f"{span(sn['seconds'])}{untold(late)}"
            )
        if "oneshot_seconds" in sn:
            parts.append(f"{span(sn['oneshot_seconds'])} in all before the derived nets")
        lines.append("supernet search: " + "; ".join(parts))
    if busy := summary.get("busy_readings"):
        lines.append(
            f"latency of {busy['n']} trials was read while other trainings ran on this host "
            f"({busy['on_front']} of them on the front)"
        )
    return lines


def _objective_names(cfg: Any) -> list[str]:
    return [o.metric for o in cfg.objectives if o.metric not in ("latency_ms", "macs")]


def _ending(result: Any) -> int:
    """The summary every search ends with: counts, the commonest failure reasons, a warning
    when the best net is barely above chance; exit 1 when nothing completed or the remote
    device stopped the search."""
    from collections import Counter

    trials = result.trials
    counts = result.summary["counts"]
    print(", ".join(f"{n} {s}" for s, n in sorted(counts.items())), file=sys.stderr)
    # a constraint's reason without each net's value (`params <= 10 (was 3778)`): one line
    # per broken bound, not one per value
    reasons: Counter[str] = Counter()
    example: dict[str, str] = {}  # the first trial's words after the error's kind
    for t in trials:
        if t.status in ("failed", "pruned"):
            kind, _, rest = (t.error or "").partition(":")
            reason = re.sub(r" \(was [^)]*\)", "", kind)[:80] or t.status
            reasons[reason] += 1
            example.setdefault(reason, " ".join(rest.split()))
    for reason, n in reasons.most_common(3):
        said = example[reason]  # what went wrong, not only its kind (the rest: hwnas show)
        tail = f": {said[:160]}{'...' if len(said) > 160 else ''}" if said else ""
        print(f"  {n} x {reason}{tail}", file=sys.stderr)
    best = result.summary.get("best_accuracy")
    classes = result.summary.get("num_classes")
    if best is not None and classes and best <= 1.0 / classes + 0.02:
        near = "below" if best < 1.0 / classes - 0.02 else "within 2 points of"
        print(
            f"warning: the best accuracy {best:.2%} is {near} chance "
            f"({1 / classes:.2%} for {classes} classes): check the data and the budget",
            file=sys.stderr,
        )
    if not counts.get("complete"):
        print("no trial completed", file=sys.stderr)
        return 1
    return 1 if result.stopped == "device" else 0  # the budget is not spent: not done


def _cmd_train(args: argparse.Namespace) -> int:
    from hwnas.api import train_net
    from hwnas.experiment.config import load_config
    from hwnas.space.arch_spec import is_reference

    if args.trial is not None and args.arch is not None:
        raise UsageError("give --trial or --arch, not both")
    if args.trial is not None and args.dir is None:
        raise UsageError("--trial N needs the study directory DIR")
    if args.epochs is not None and args.epochs < 1:
        raise UsageError("--epochs must be at least 1")
    if args.timing_rounds is not None and not 0 <= args.timing_rounds <= 50:
        raise UsageError("--timing-rounds must be from 0 to 50")
    new_study = args.config is not None or args.dir is None
    if new_study and args.dir is not None:
        raise UsageError("give DIR (an existing study) or --config FILE --out DIR, not both")
    if not new_study and (args.overrides or args.data or args.device):
        raise UsageError("--set/--data/--device shape a new study: use them with --config")
    cfg = None
    out = args.dir
    if new_study:
        overrides = list(args.overrides)
        if args.arch is not None and is_reference(args.arch):
            overrides.append("space=fastcnn")  # the reference nets live there
        cfg = load_config(args.config, overrides, data_path=args.data, device=args.device)
        out = args.out or "runs/train"

    ran: list[int] = []

    def on_run(trial: Any, r: int, total: int) -> None:
        ran.append(trial.id)
        if args.quiet:
            return
        m = trial.metrics
        tta = (
            f", TTA {m['test_accuracy_tta']:.2%} ({m['tta_views']:.0f} views)"
            if "test_accuracy_tta" in m
            else ""
        )
        test = f"test {m['test_accuracy']:.2%}" if "test_accuracy" in m else trial.status
        secs = f" in {m['train_seconds']:.1f} s" if "train_seconds" in m else ""
        err = f" ({trial.error})" if trial.error else ""
        print(f"run {r + 1}/{total}: trial #{trial.id} {test}{tta}{secs}{err}", file=sys.stderr)

    result = train_net(
        out,
        args.arch,
        config=cfg,
        trial_id=args.trial,
        repeats=args.repeats,
        epochs=args.epochs,
        force=args.force,
        on_run=on_run,
        timing_rounds=args.timing_rounds,
    )
    if result.broken:  # a pruned trial, or an arch that does not fit: trained, as asked
        print(
            f"warning: the net breaks the study's constraints ({'; '.join(result.broken)}): "
            "trained as asked, but it does not meet them",
            file=sys.stderr,
        )
    if result.same_as is not None:
        print(
            f"note: this arch is trial #{result.same_as}'s; its runs here stand apart from it "
            f"(--trial {result.same_as} trains it as that net: its summary, the verdicts)",
            file=sys.stderr,
        )
    if args.json:
        sys.stdout.write(json.dumps([t.to_dict() for t in result.trials], indent=1) + "\n")
        return 0
    ok = [t for t in result.trials if "test_accuracy" in t.metrics]
    if ok:
        import statistics

        accs = [t.metrics["test_accuracy"] for t in ok]
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        m = ok[0].metrics
        # a latency timed again side by side with the study's final nets: its median, said so
        mine = result.parent.metrics if result.parent is not None else {}
        costs = ", ".join(
            f"{k} {_fmt(mine[f'final_{k}'], 'g')} (side by side)"
            if f"final_{k}" in mine
            else f"{k} {_fmt(m[k], 'g')}"
            for k in sorted(m)
            if k.startswith(("latency_ms", "macs", "params"))
        )
        spread = f" ± {sd:.2%} over {len(ok)} runs" if len(ok) > 1 else " (1 run)"
        print(f"{ok[0].describe}: test {statistics.fmean(accs):.2%}{spread}; {costs}")
        if mine.get("final_runs", 0) > len(ok):  # the net's summary, as show and report give it
            print(f"  all its runs at this length: test {_test_cell(mine)}")
    ids = ", ".join(f"#{t.id}" for t in result.trials)
    if ran:
        print(f"stored as trial(s) {ids} in {result.dir}")
    else:
        print(f"already trained, nothing run: trial(s) {ids} in {result.dir} (--repeats for more)")
    if result.parent is not None:  # the verdict on the references, timed again with this net
        verdicts = {"references": result.references}
        for line in _reference_lines(verdicts, result.study_trials, result.objectives):
            print(line)
        if args.timing_rounds and not result.references:
            print(
                "note: --timing-rounds: no reference net with final trainings in this study, "
                "so nothing was timed side by side",
                file=sys.stderr,
            )
    return 0 if ok else 1


def _progress(console: Any, total: int, disabled: bool) -> tuple[Any, Any]:
    if disabled:
        return None, None
    from hwnas.progress import make_progress

    fields = ("best {task.fields[best]}", "pareto {task.fields[pareto]}")
    progress = make_progress("search", console, *fields)
    task = progress.add_task("search", total=total, best="-", pareto=0)
    return progress, task


def _phase_bars(console: Any) -> Any:
    from hwnas.progress import make_progress

    return make_progress("{task.description}", console)


def _fmt(v: Any, kind: str) -> str:
    if v is None:
        return "-"
    if kind == "pct":
        return f"{v:.2%}"
    if kind == "ms":
        return fmt_ms(v)
    if kind == "int":
        return f"{v:,.0f}"
    if kind == "g" and isinstance(v, int | float):  # a count in bytes reads whole, like MACs
        return fmt_number(v)
    return str(v)


def _cmd_show(args: argparse.Namespace) -> int:
    from hwnas.experiment.study import Study

    study = Study(args.dir, readonly=True)
    trials = study.trials()
    if args.json:
        keys = (
            "id",
            "status",
            "arch",
            "metrics",
            "error",
            "parent_id",
            "describe",
            "seed",
            "info",
            "started_at",
            "finished_at",
            "fidelity",
            "stage",
        )
        # where trained: the per-epoch curve; where stopped: the epoch and why
        optional = ("curve", "stopped_at_epoch", "prune_reason")
        out = [
            {
                **{k: d[k] for k in keys},
                **{k: d[k] for k in optional if d.get(k) not in (None, [])},
            }
            for d in (t.to_dict() for t in trials)
        ]
        sys.stdout.write(json.dumps(out, indent=1) + "\n")
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    summary = study.summary(trials)
    front_ids = {t.id for t in study.pareto(trials)}
    # a log or a pipe gets the whole table, not 80 columns of cut cells
    console = Console(width=None if sys.stdout.isatty() or "COLUMNS" in os.environ else 200)
    tally: dict[str, int] = {}
    for t in trials:
        tally[t.status] = tally.get(t.status, 0) + 1
    counts = ", ".join(f"{n} {s}" for s, n in sorted(tally.items()))
    if finals := sum(t.stage == "final" for t in trials):
        counts += f"; {finals} of them final training{'s' if finals > 1 else ''}"
    best = summary["best_accuracy"]
    console.print(
        f"[bold]{escape(str(args.dir))}[/]: {summary['trials']} trials{f' ({counts})' if counts else ''}; "
        "best accuracy "
        f"{_fmt(best, 'pct')}; Pareto front {summary['pareto_size']}; target {summary['target']}",
        soft_wrap=True,
    )
    refs = _reference_lines(summary, trials, study.objectives)
    for line in [*_model_lines(summary), *refs]:
        console.print(line, soft_wrap=True, markup=False)  # archs' own brackets
    # the front, every net with final trainings (a reference net the search was to beat may
    # be off the front: its test figure is what the front is judged against) and the latest
    kept = front_ids | {t.id for t in trials if "final_runs" in t.metrics}
    shown = (
        trials
        if args.all
        else [t for t in trials if t.id in kept] + [t for t in trials[-20:] if t.id not in kept]
    )
    table = Table(show_lines=False)
    # objectives and constrained metrics the fixed columns leave out (a zero-cost proxy,
    # energy, a device's SRAM...) get their own
    fixed = {"accuracy", "latency_ms", "macs", "params"}
    named = [o.metric for o in study.config.objectives] + [
        c.metric for c in study.config.constraints
    ]
    extra = [m for m in dict.fromkeys(named) if m not in fixed]
    # another target's latency (`latency_ms@h200`) beside the first, in its format
    lats = [m for m in extra if m.startswith("latency_ms@")]
    extra = [m for m in extra if m not in lats]
    budgets = _budget_cells(trials)
    lat_cols = [f"latency ms {m[len('latency_ms') :]}" for m in lats]
    cols = ("id", "", "status", "accuracy", "test", "latency ms", *lat_cols, "MACs", "params")
    cols = (*cols, *extra)
    if budgets:
        cols = (*cols, "budget")
    for col in (*cols, "arch / error"):
        table.add_column(col, justify="left" if col in ("", "status", "arch / error") else "right")
    for t in sorted(shown, key=lambda t: t.id):
        m = t.metrics
        table.add_row(
            str(t.id),
            "*"
            if t.id in front_ids
            else (
                f"F{t.parent_id if t.parent_id is not None else ''}" if t.stage == "final" else ""
            ),
            t.status,
            _fmt(m.get("accuracy"), "pct"),
            _test_cell(m),
            _fmt(m.get("latency_ms"), "ms"),
            *(_fmt(m.get(k), "ms") for k in lats),
            _fmt(m.get("macs"), "int"),
            _fmt(m.get("params"), "int"),
            *(_fmt(m.get(k), "g") for k in extra),
            *([budgets.get(t.id, "")] if budgets else []),
            _arch_cell(t),
        )
    console.print(table)
    console.print(
        "* = on the Pareto front; Fn = a final training of trial n (F: of an arch given to "
        "`hwnas train`); test = mean ± std of "
        "the final trainings (count × epochs) where there are any"
        + (
            "; budget = epochs or data share, <-n promoted from n, bN its bracket"
            if budgets
            else ""
        )
    )
    return 0


def _budget_cells(trials: list[Any]) -> dict[int, str]:
    """Where trials ran at several fidelities (a halving or Hyperband scheduler, a strategy's
    own budgets): each trial's budget (epochs its weights have seen, or its share of the
    data), ``<-n`` for a promotion of trial n, and its bracket ``bN``: the Nth lowest budget
    an arch was started at (Hyperband's bracket N starts at rung N; a promotion stays in its
    source's bracket). Empty where every trial had the same budget: nothing to show."""

    def size(t: Any) -> tuple[float, str]:
        fid = t.fidelity or {}
        epochs = t.info.get("epochs_total", fid.get("epochs"))
        if fid.get("data_fraction") is not None:
            return float(fid["data_fraction"]), f"{fid['data_fraction']:.0%} data"
        return (float(epochs), f"{epochs} ep") if epochs is not None else (math.inf, "full")

    searched = [t for t in trials if t.stage != "final"]
    if len({size(t)[0] for t in searched}) < 2:
        return {}
    by_id = {t.id: t for t in searched}

    def root(t: Any) -> Any:
        seen = set()
        while (src := t.info.get("promoted_from")) is not None and int(src) in by_id:
            if t.id in seen:  # a corrupt chain: stop rather than loop
                break
            seen.add(t.id)
            t = by_id[int(src)]
        return t

    start = {t.id: size(root(t))[0] for t in searched}  # the budget its arch began at
    starts = sorted(set(start.values()))
    cells = {}
    for t in searched:
        src = t.info.get("promoted_from")
        cells[t.id] = (
            size(t)[1] + (f" <-{src}" if src is not None else "") + f" b{starts.index(start[t.id])}"
        )
    return cells


def _test_cell(m: dict[str, Any]) -> str:
    """Final trainings' test accuracy (mean ± std), else the trial's own: as the report's."""
    from hwnas.report.plots import fmt_test

    return fmt_test({"metrics": m}, lambda v: _fmt(v, "pct"))


def _cmd_report(args: argparse.Namespace) -> int:
    from hwnas.experiment.study import Study
    from hwnas.report import write_study_report
    from hwnas.report.html import is_report

    out = None if args.output is None else Path(args.output)
    if out is None and args.force:
        raise UsageError("--force goes with --output (DIR/report.html is always rewritten)")
    if out is not None and out.is_dir():
        raise UsageError(f"--output {out}: is a directory; name the file to write")
    if out is not None and out.is_file() and not (args.force or is_report(out)):
        raise UsageError(f"--output {out}: exists and is not a report; --force replaces it")
    study = Study(args.dir, readonly=True)
    if out is None:
        study.write_pareto_json()
    print(write_study_report(study, out))
    return 0


def _cmd_export(args: argparse.Namespace) -> int:
    from hwnas.report.export import export_trial, final_runs_note

    path, diff = export_trial(
        args.dir,
        args.trial,
        args.output,
        fmt=args.format,
        preprocessing=not args.no_preprocessing,
        force=args.force,
        dynamic_batch=args.dynamic_batch,
    )
    print(f"wrote {path} (ONNX Runtime vs PyTorch max abs diff {diff:.2e})")
    note = final_runs_note(args.dir, args.trial)
    if note:
        print(note, file=sys.stderr)
    return 0


def _dims_arg(text: str | None) -> list[int] | None:
    """``--input-shape 3,224,224`` as a list of positive ints."""
    if text is None:
        return None
    try:
        dims = [int(d) for d in text.replace("x", ",").split(",")]
    except ValueError:
        dims = []
    if not dims or min(dims) < 1:
        raise UsageError(
            f"--input-shape {text!r}: give positive sizes past the batch, e.g. 3,32,32"
        )
    return dims


def _cmd_profile(args: argparse.Namespace) -> int:
    from hwnas.experiment.config import apply_overrides, load_config, validate_config

    if args.input_shape is not None and args.dir is not None:
        raise UsageError("--input-shape goes with --onnx or --arch (a trial's is the study's)")

    overrides = list(args.overrides)
    if args.target:  # objectives and constraints play no part here; drop any the target lacks
        # the kind goes first so `--set target.x=...` can still configure it
        overrides = [f"target={args.target}", "objectives={accuracy: max}", "constraints=[]"]
        overrides += list(args.overrides)
    if args.dir is not None:
        from hwnas.experiment.study import Study

        if args.trial is None:
            raise UsageError("--dir needs --trial ID")
        if args.config is not None:  # it was ignored: the trial read the study's own target
            raise UsageError(
                "--config goes with --arch or --onnx; a trial is profiled on its study's "
                "target: --target T (with --set target.x=...) measures it on another"
            )
        study = Study(args.dir, readonly=True)
        base = study.config.to_json_dict()
        trial = study.store.trial(args.trial)
        io = study.store.get_meta_json("model_io")
        study.close()
        if trial is None or io is None:
            raise UsageError(f"--trial {args.trial}: no such trial with a model in {args.dir}")
        cfg = validate_config(apply_overrides(base, overrides))
        arch: Any = trial.arch
        shape, classes = tuple(io["input_shape"]), int(io["num_classes"])
    else:
        cfg = load_config(args.config, overrides)
        if args.onnx is not None:
            from hwnas.hardware.costs import profile_onnx

            costs = profile_onnx(args.onnx, cfg.target, _dims_arg(args.input_shape))
            return _print_costs(costs, args.json, args.onnx, _measured_on([cfg.target], None))
        from hwnas.space.arch_spec import is_reference, read_arch_json

        if is_reference(args.arch) and cfg.space.name != "fastcnn":
            cfg = load_config(args.config, [*overrides, "space=fastcnn"])
        arch = None if is_reference(args.arch) else read_arch_json(args.arch)
        shape, classes = _profiled_input(args, cfg)
    from hwnas.hardware.costs import profile_module
    from hwnas.space import make_space

    space = make_space(cfg.space)
    if arch is None:
        from hwnas.space.arch_spec import parse_arch

        arch = parse_arch(args.arch, space)
    space.validate(arch)
    model = space.build(arch, shape, classes)  # type: ignore[arg-type]
    # the config's further sources too (a second runtime, a board), unless --target names one
    more = [] if args.target else cfg.costs
    costs = profile_module(model, shape, cfg.target, arch=arch, space=space, costs=more)  # type: ignore[arg-type]
    on = _measured_on([cfg.target, *more], list(shape))
    return _print_costs(costs, args.json, space.describe(arch), on)


def _profiled_input(args: argparse.Namespace, cfg: Any) -> tuple[tuple[int, ...], int]:
    """Input shape and classes an ``--arch`` is profiled at: ``--input-shape`` or the
    config's data; a reference net named without data at its own CIFAR-10 input (the
    default config's 8x8 digits cannot feed it, and were not asked for)."""
    from hwnas.space.arch_spec import is_reference

    given = _dims_arg(args.input_shape)
    if given is not None and len(given) != 3:
        raise UsageError(f"--input-shape {args.input_shape!r}: an arch takes C,H,W, e.g. 3,32,32")
    # a config of a board alone names no data: the reference net's own input then
    data_named = "data" in cfg.model_fields_set or any(o.startswith("data") for o in args.overrides)
    if is_reference(args.arch) and not data_named:
        return tuple(given or (3, 32, 32)), 10
    from hwnas.data import load_dataset

    data = load_dataset(cfg.data, cfg.seed)
    return tuple(given or data.input_shape), data.num_classes


#: the settings of a target that change what its latency reads
_READING_KEYS = ("batch", "threads", "precision")


def _measured_on(targets: list[Any], shape: list[int] | None) -> dict[str, Any]:
    """What the costs were read on: each source with the settings that change a reading
    (a latency without its batch and threads is not comparable with another)."""
    sources = []
    for t in targets:
        entry: dict[str, Any] = {"target": f"{t.name}@{t.label}" if t.label else t.name}
        entry.update({k: getattr(t, k) for k in _READING_KEYS if getattr(t, k, None) is not None})
        sources.append(entry)
    return {"input_shape": shape, "sources": sources} if shape else {"sources": sources}


def _print_costs(costs: dict[str, Any], as_json: bool, title: str, on: dict[str, Any]) -> int:
    if as_json:
        sys.stdout.write(json.dumps({**costs, "measured_on": on}, indent=1) + "\n")
        return 0
    said = []
    for s in on["sources"]:
        settings = [f"{k} {s[k]}" for k in _READING_KEYS if k in s]
        said.append(s["target"] + (f" ({', '.join(settings)})" if settings else ""))
    shape = "x".join(map(str, on.get("input_shape") or []))
    title = f"{title}{f' at {shape}' if shape else ''} on {', '.join(said)}"
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    table = Table(title=escape(title))
    table.add_column("cost")
    table.add_column("value", justify="right")
    for k, v in costs.items():
        if isinstance(v, list):
            v = ", ".join(f"{x:.4g}" for x in v)
        elif isinstance(v, float):
            v = fmt_number(v)
        table.add_row(k, str(v))
    Console().print(table)
    return 0


def _cmd_config(args: argparse.Namespace) -> int:
    import yaml

    if args.builtin_only and not args.reference:
        raise UsageError("--builtin-only goes with --reference")
    if args.reference:
        from hwnas.experiment.reference import render_reference

        sys.stdout.write(render_reference(plugins=not args.builtin_only) + "\n")
        return 0

    from hwnas.experiment.config import load_config

    cfg = load_config(args.config, args.overrides)
    sys.stdout.write(yaml.safe_dump(cfg.to_json_dict(), sort_keys=False))
    return 0


def _cmd_agent(args: argparse.Namespace) -> int:
    import os

    token = args.token
    if token is None and args.token_file is not None:
        try:
            token = Path(args.token_file).read_text().strip()
        except OSError as exc:
            raise UsageError(
                f"--token-file: cannot read {args.token_file} ({exc.strerror})"
            ) from None
    if token is None:
        token = os.environ.get("HWNAS_AGENT_TOKEN")
    if not token:
        raise UsageError("a token is required: --token, --token-file or HWNAS_AGENT_TOKEN")
    if min(args.max_bytes, args.max_input, args.threads) < 1 or not 0 <= args.port <= 65535:
        raise UsageError("--max-bytes, --max-input and --threads must be >= 1, --port 0..65535")
    if not 0 < args.time_limit < 1e6:
        raise UsageError("--time-limit must be a positive number of seconds")
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        raise UsageError("the agent needs onnxruntime: pip install onnxruntime") from None
    from hwnas.hardware.agent import serve

    try:
        serve(
            args.host,
            args.port,
            token,
            args.max_bytes,
            args.threads,
            args.max_input,
            time_limit=args.time_limit,
        )
    except OSError as exc:
        raise UsageError(
            f"cannot listen on {args.host}:{args.port} ({exc.strerror or exc})"
        ) from None
    return 0


def _cmd_lut(args: argparse.Namespace) -> int:
    from hwnas.experiment.config import load_config

    cfg = load_config(args.config, args.overrides)
    if args.lut_command == "build":
        from hwnas.hardware.lut import build_table

        table, info = build_table(cfg, progress=not args.quiet, directory=args.dir)
        table.close()
        print(
            f"lookup table {info['path']}: {info['entries']} entries "
            f"({info['measured_now']} readings taken now); fit: overhead "
            f"{info['overhead_ms'] * 1000:.2f} us, scale {info['scale']:.3f}, "
            f"{info['per_block_ms'] * 1000:.2f} us per block, "
            f"median error {info['fit_median_rel_error']:.1%} on the calibration networks"
        )
        return 0
    if args.n < 2 or args.repeats < 1:
        raise UsageError("--n must be >= 2 and --repeats >= 1")
    most = max(6, args.repeats) if args.max_repeats is None else args.max_repeats
    if most < args.repeats:
        raise UsageError(f"--max-repeats {most} is below --repeats {args.repeats}")
    from hwnas.hardware.lut import evaluate_table

    report, _ = evaluate_table(
        cfg,
        args.n,
        seed=args.seed,
        repeats=args.repeats,
        max_repeats=most,
        progress=not args.quiet,
        directory=args.dir,
    )
    if report.get("warning"):
        print(f"warning: {report['warning']}", file=sys.stderr)
    if not args.text:
        sys.stdout.write(json.dumps(report, indent=1) + "\n")
        return 0
    print(
        f"{report['n']} archs: {report['within_10pct']:.1%} within +-10 %, Kendall tau "
        f"{report['kendall_tau']:.3f}, RMSE {report['rmse_ms'] * 1000:.2f} us, MAPE "
        f"{report['mape']:.1%}; prediction {report['speedup']:,.0f}x faster than measurement"
    )
    noise = report.get("noise_floor_within_10pct")
    if noise is not None:
        print(
            f"noise floor: two end-to-end readings of one arch agree within +-10 % for "
            f"{noise:.1%} of the archs (the table cannot beat that by much)"
        )
    return 0


def _cmd_predictor(args: argparse.Namespace) -> int:
    from hwnas.hardware import predictor as P

    if args.predictor_command == "eval":
        model = P.LatencyPredictor.load(args.model)
        src = model.meta.get("training", {}).get("data", {})
        data = args.data or src.get("path")
        if data is None:
            raise UsageError("--data: the predictor file names no training table; give one")
        arch_col = args.arch_column or src.get("arch_column", "arch")
        target_col = args.target_column or src.get("target_column", "latency_ms")
        rows = P.load_rows(model.space, data, arch_col, target_col)
        archs, latency = P.held_out(model, rows)
        if not archs:
            raise UsageError(f"--data: every row of {data} was used in training")
        report = P.evaluate(model, archs, latency)
        if args.config is not None or args.overrides:
            from hwnas.experiment.config import load_config

            on = load_config(args.config, args.overrides)
            if on.space.name != model.space.name:
                raise UsageError(
                    f"--config: its space is {on.space.name}, the predictor's {model.space.name}"
                )
            report.update(
                P.noise_check(
                    on,
                    model.space,
                    model.featurizer.shape,
                    archs,
                    latency,
                    args.seed,
                    not args.quiet,
                )
            )
        sys.stdout.write(json.dumps(report, indent=1) + "\n")
        return 0

    if args.data is None and (args.config is None or args.n is None):
        raise UsageError("give --data CSV, or --config FILE with --n N to measure on its target")
    if args.n is not None and args.data is not None:
        raise UsageError("--n measures new archs; it cannot be combined with --data")
    if not args.output.endswith(".npz"):
        raise UsageError(f"--output must end in .npz: {args.output}")
    cfg = None
    if args.config is not None or args.overrides:
        from hwnas.experiment.config import load_config

        cfg = load_config(args.config, args.overrides)
        if args.space is not None and args.space != cfg.space.name:
            raise UsageError(f"--space {args.space} differs from the config's {cfg.space.name}")
    trees = {"auto": None, "on": True, "off": False}[args.trees]
    if args.data is None:
        assert cfg is not None
        if args.n < 12:
            raise UsageError("--n must be at least 12 (10 to train, the rest to judge)")
        space, shape, classes, pairs = P.measure_on_target(
            cfg, args.n, args.seed, progress=not args.quiet
        )
        data = P.write_pairs(args.save_data or Path(args.output).with_suffix(".csv"), space, pairs)
        arch_col, target_col = "arch", "latency_ms"
    else:
        data, arch_col, target_col = Path(args.data), args.arch_column, args.target_column
        space, shape, classes = _predictor_space(args, cfg)
    rows = P.load_rows(space, data, arch_col, target_col)
    n = len(rows.archs)
    size = args.train_size if args.train_size is not None else min(500, (4 * n) // 5)
    model, report = P.train_split(
        space, rows, size, shape, classes, args.seed, target_col, arch_col, trees
    )
    if args.data is None and report.get("n"):
        assert cfg is not None  # measured here: a second reading of the held-out archs
        held, latency = P.held_out(model, rows)
        report.update(P.noise_check(cfg, space, shape, held, latency, args.seed, not args.quiet))
    path = model.save(args.output)
    fit = model.meta["fit"]
    out = {
        **report,
        "train_size": size,
        "features": fit["choice"],
        "cv_within_10pct": fit["cv_within_10pct"],
        "model": str(path),
        "data": str(data),
    }
    sys.stdout.write(json.dumps(out, indent=1) + "\n")
    return 0


def _predictor_space(args: argparse.Namespace, cfg: Any) -> tuple[Any, tuple[int, int, int], int]:
    """Space, input shape and classes for training from a table."""
    from hwnas.hardware import predictor as P
    from hwnas.space import make_space

    if cfg is not None:
        space = make_space(cfg.space)
        name = space.name
    else:
        name = args.space
        if name is None:
            rows = P.read_table(args.data, args.arch_column, args.target_column)
            name = P.guess_space(rows[0][args.arch_column])
        from hwnas.experiment.config import load_config

        space = make_space(load_config(None, [f"space={name}"]).space)
    shape, classes = P.DEFAULT_SHAPES.get(name, ((3, 32, 32), 10))
    if cfg is not None and args.input_shape is None:
        from hwnas.data import load_dataset

        data = load_dataset(cfg.data, cfg.seed)
        shape, classes = data.input_shape, data.num_classes
    if args.input_shape is not None:
        try:
            c, h, w = (int(v) for v in args.input_shape.split(","))
        except ValueError:
            raise UsageError(f"--input-shape: expected C,H,W, got {args.input_shape!r}") from None
        if min(c, h, w) < 1:
            raise UsageError(f"--input-shape: sizes must be positive, got {args.input_shape!r}")
        shape = (c, h, w)
    if args.num_classes is not None:
        if args.num_classes < 1:
            raise UsageError("--num-classes must be >= 1")
        classes = args.num_classes
    return space, shape, classes


COMMANDS = {
    "search": _cmd_search,
    "train": _cmd_train,
    "show": _cmd_show,
    "report": _cmd_report,
    "export": _cmd_export,
    "config": _cmd_config,
    "profile": _cmd_profile,
    "lut": _cmd_lut,
    "predictor": _cmd_predictor,
    "agent": _cmd_agent,
}


#: Ctrl-C presses this process has had (counted by :func:`_count_interrupt`)
_interrupts: list[int] = []


def _count_interrupt(signum: int, frame: Any) -> None:
    """Python's own Ctrl-C handler, which also remembers that one came: an interrupt that
    lands while a module is imported may surface as that import's own error instead of a
    KeyboardInterrupt (numpy's lazy attributes recurse, an extension module fails to
    initialise), and it must still end as an interrupt, not a traceback."""
    _interrupts.append(signum)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    if argv is None:  # the program itself, not a caller in Python
        with contextlib.suppress(ValueError):  # not the main thread: nothing to count
            signal.signal(signal.SIGINT, _count_interrupt)
    try:
        return _main(argv)
    finally:
        if argv is None:  # the program itself, not a caller in Python
            # the work is over and its exit code chosen: a Ctrl-C that lands while the
            # interpreter tears down (torch, ONNX Runtime, worker pools) must not turn that
            # code into death by SIGINT
            with contextlib.suppress(ValueError):  # not the main thread: nothing to guard
                signal.signal(signal.SIGINT, signal.SIG_IGN)
        _forget_caught_interrupt()


def _forget_caught_interrupt() -> None:
    """Clear CPython's record of a Ctrl-C that a string ``exec`` let through, once caught.

    CPython keeps one process-wide flag, "a KeyboardInterrupt went unhandled", which every
    ``exec`` of source text sets when the interrupt passes through it (dataclasses build
    their methods that way, so a Ctrl-C that lands while a module is imported mid-search
    does) and never clears when the exception is caught further up. Run as ``python -m``,
    the interpreter then kills itself with SIGINT at exit, replacing the exit code we chose
    (130) with death by signal. A string ``exec`` resets the flag before it runs: an empty
    one is how Python code clears a stale flag.
    """
    exec("pass")  # noqa: S102 - a constant string, run for its side effect on the flag


def _stdout_closed() -> bool:
    """Whether the reader of stdout went away (``hwnas show DIR | head -1``): then the
    command ends quietly, as a Unix tool does, its work already stored; Python's own flush
    at exit is sent to /dev/null so it does not complain either."""
    import select

    try:
        fd = sys.stdout.fileno()
        poll = select.poll()  # a pipe whose reader is gone polls as an error
        poll.register(fd, select.POLLOUT)
        closed = any(ev & (select.POLLERR | select.POLLHUP) for _, ev in poll.poll(0))
    except (OSError, ValueError, AttributeError):  # no real stdout: not this case
        return False
    if closed:
        with contextlib.suppress(OSError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), fd)
    return closed


def _main(argv: list[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE

    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        from hwnas.hardware.remote import DeviceUnreachable

        msg = str(exc)
        if "\n" in msg:  # a library's text quoted inside: still one line
            msg = " ".join(msg.split())[:300]
        if isinstance(exc, DeviceUnreachable):  # mid-run (one-shot fix-up, a table's build):
            # the board went away, the input is fine; what was done is saved (as trials that
            # fail on it stop a search with exit 1)
            print(
                f"hwnas {args.command}: error: {msg}; run the same command again once the "
                "device answers (what was done is kept)",
                file=sys.stderr,
            )
            return 1
        print(f"hwnas {args.command}: error: {msg}", file=sys.stderr)
        return EXIT_USAGE
    except OSError as exc:  # the file system refused a path the user gave: one line, no trace
        if isinstance(exc, BrokenPipeError) and _stdout_closed():
            return EXIT_BROKEN_PIPE  # not another pipe's (a remote device's): said below
        where = f": {exc.filename}" if exc.filename else ""
        msg = f"{exc.strerror or type(exc).__name__}{where}"
        print(f"hwnas {args.command}: error: {msg[:300]}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception:
        if not _interrupts:
            raise
        print("interrupted", file=sys.stderr)  # an error the Ctrl-C caused: see _count_interrupt
        return EXIT_INTERRUPTED


if __name__ == "__main__":
    sys.exit(main())
