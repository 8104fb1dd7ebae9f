"""A warm start for the tests' ``hwnas`` runs: this process imports torch and hwnas once, then
forks one child per command, which runs the real entry point (``hwnas.cli.main``, as ``python
-m hwnas.cli`` does) in its own process with its own file descriptors, working directory and
exit code. A fresh interpreter spends ~2.5 s of a 2-core machine on those imports; the suite
runs ~200 commands.

Nothing here ever runs a torch op, so no thread pool exists to be cut in half by the fork.

Protocol, one JSON object per line: the parent writes ``{"argv", "env", "cwd", "stdout",
"stderr"}`` (the last two: file paths for the child's output); this process answers ``{"pid"}`` at once, so the parent
can kill the child on its timeout, then ``{"rc"}`` when the child is gone (a negative number:
killed by that signal, as :mod:`subprocess` reports it).
"""

from __future__ import annotations

import json
import os
import sys
import tempfile


def _child(request: dict) -> None:
    """In the forked child: become ``hwnas ARGV`` and never return into the loop."""
    code = 1
    try:
        os.setpgrp()  # the parent's timeout kills the command and the workers it started
        os.environ.clear()
        os.environ.update(request["env"])
        tempfile.tempdir = None  # found again from TMPDIR, as a fresh process would
        os.chdir(request["cwd"])
        null = os.open(os.devnull, os.O_RDONLY)
        os.dup2(null, 0)
        for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
            f = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
            os.dup2(f, fd)
            os.close(f)
        sys.stdin = open(0, closefd=False)  # noqa: SIM115 - the process's own fds
        sys.stdout = open(1, "w", closefd=False)  # noqa: SIM115
        sys.stderr = open(2, "w", closefd=False)  # noqa: SIM115
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

        atexit._run_exitfuncs()
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
    finally:
        os._exit(code if isinstance(code, int) else 1)


def main() -> None:
    import torch  # noqa: F401 - the point: imported once, before any fork

    import hwnas.cli  # noqa: F401
    import hwnas.experiment.experiment  # noqa: F401

    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            _child(request)
        print(json.dumps({"pid": pid}), flush=True)
        _, status = os.waitpid(pid, 0)
        rc = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
        print(json.dumps({"rc": rc}), flush=True)


if __name__ == "__main__":
    main()
