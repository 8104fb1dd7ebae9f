"""A warm start for the tests' ``hwnas`` runs: this process imports torch and hwnas once, then
forks one child per command, which runs the real entry point (``hwnas.cli.main``, as ``python
-m hwnas.cli`` does) in its own process with its own file descriptors, environment, working
directory and exit code. A fresh interpreter spends ~2.5 s of a 2-core machine on those
imports and ~4 s more on what commands import on the way (``PRELOAD``); the suite runs ~200
commands.

Nothing here runs a torch op, so no intra-op thread pool has started when it forks. What a
forked child shares that a fresh interpreter would not: the hash seed and warnings already
shown at import (a test that needs either asks ``run_cli`` for ``HWNAS_TEST_FRESH=1``).

Protocol, one JSON object per line: the parent writes ``{"argv", "env", "cwd", "stdout",
"stderr"}`` (the last two: file paths for the child's output); this process answers ``{"pid"}``
at once, so the parent can kill the child on its timeout, then ``{"rc"}`` when the child is
gone (a negative number: killed by that signal, as :mod:`subprocess` reports it).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import sys
import tempfile


def _die_with_parent() -> None:
    """Linux: the child is killed if this process goes (a cancelled test run leaves none)."""
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG


def _child(request: dict) -> None:
    """In the forked child: become ``hwnas ARGV`` and never return into the loop."""
    code = 1
    try:
        os.setpgrp()  # the parent's timeout kills the command and the workers it started
        _die_with_parent()
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # found again from TMPDIR, as a fresh process would
        os.chdir(request["cwd"])
        sys.path[0] = request["cwd"]  # as ``python -m`` run there puts it
        # the standard streams keep their objects (empty buffers at the fork, the buffering and
        # error handling a fresh interpreter gives them); their file descriptors change
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        os.close(null)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(f, fd)
            os.close(f)
        sys.argv = ["hwnas", *request["argv"]]
        from hwnas import cli

        try:
            code = cli.main()
        except SystemExit as stop:
            c = stop.code
            code = c if isinstance(c, int) else (0 if c is None else 1)
            if not isinstance(c, int) and c is not None:
                print(c, file=sys.stderr)
        except BaseException:  # noqa: BLE001 - what the interpreter would print and exit 1 for
            import traceback

            traceback.print_exc()
            code = 1
        import atexit
        import logging
        import threading

        threading._shutdown()  # type: ignore[attr-defined]  # the interpreter's exit order
        atexit._run_exitfuncs()
        logging.shutdown()
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(OSError, ValueError):
                stream.flush()
    finally:
        os._exit(code if isinstance(code, int) else 1)


#: what most commands import on the way (FLOP counting and ONNX export pull in dynamo, the
#: study summary scipy.stats, digits and the predictors scikit-learn): ~4 s more of a 2-core
#: machine per command when each child imports them itself. The only threads they start are
#: OpenBLAS's pools (numpy's, as before, and scipy's own), which OpenBLAS stops at a fork and
#: starts again in the child; onnxruntime is left out, as its import starts a thread of its
#: own (and costs 0.04 s).
PRELOAD = (
    "torch._dynamo",
    "torch.onnx",
    "onnx",
    "scipy.stats",
    "sklearn.datasets",
    "sklearn.ensemble",
    "sklearn.gaussian_process",
    "sklearn.model_selection",
    "plotly.graph_objects",
    "optuna",
)


def main() -> None:
    import importlib

    import torch  # noqa: F401 - the point: imported once, before any fork

    import hwnas.cli  # noqa: F401
    import hwnas.experiment.experiment  # noqa: F401

    for name in PRELOAD:
        with contextlib.suppress(Exception):  # an optional extra missing or broken: the
            importlib.import_module(name)  # commands that use it import it (and fail) alone

    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        try:
            print(json.dumps({"pid": pid}), flush=True)
            _, status = os.waitpid(pid, 0)
        except BaseException:  # Ctrl-C of the test run, a closed pipe: the command goes too
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pid, signal.SIGKILL)
            raise
        rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"rc": rc}), flush=True)


if __name__ == "__main__":
    main()
