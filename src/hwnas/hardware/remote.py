"""Hardware in the loop: latency measured on another device, by a command or by the agent.

Two cost-model kinds, both fed the candidate as an ONNX file:

- ``command`` runs your own argument list (``ssh board ./bench {model}``) without a shell and
  reads the figure from its output with a regex or a JSON key;
- ``remote`` POSTs the model to ``hwnas agent serve`` on the device (:mod:`hwnas.hardware.agent`).

A device is slow and flaky compared with a local meter, so both retry with a doubling backoff,
give up with one line that says why (the trial fails with it and the search goes on), and
cache results by a hash of the model's graph *without its weight values*: latency does not
depend on them, so the same architecture trained with another seed is not timed twice.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode, urlsplit

from hwnas.core.errors import UserError
from hwnas.hardware.base import Candidate, CostModel

if TYPE_CHECKING:
    from hwnas.hardware.config import CommandTarget, RemoteTarget


class HardwareLoopError(UserError):
    """A device measurement that failed for good; the message is one line naming why."""


class DeviceUnreachable(HardwareLoopError):
    """The board itself did not answer (refused, broken or timed-out connections after every
    retry): not this net's fault, so trials failing so in a row stop a search."""


def graph_key(model_bytes: bytes) -> str:
    """SHA-256 of an ONNX model with its initializers' values dropped (names, shapes kept)."""
    import onnx

    proto = onnx.load_from_string(model_bytes)
    for t in proto.graph.initializer:
        for f in ("raw_data", "float_data", "int32_data", "int64_data", "double_data"):
            t.ClearField(f)
    return hashlib.sha256(proto.SerializeToString(deterministic=True)).hexdigest()


def _key(*parts: Any) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:32]


class ResultCache:
    """Results by key, in memory and optionally as one JSON file per key in ``directory``."""

    def __init__(self, directory: str | None) -> None:
        self.mem: dict[str, dict[str, Any]] = {}
        self.dir = Path(directory).expanduser() if directory else None
        self.hits = 0

    def get(self, key: str) -> dict[str, Any] | None:
        hit = self.mem.get(key)
        if hit is None and self.dir is not None:
            try:
                hit = json.loads((self.dir / f"{key}.json").read_text())["result"]
            except (OSError, ValueError, KeyError, TypeError):
                hit = None
            if hit is not None:
                self.mem[key] = hit
        if hit is not None:
            self.hits += 1
        return hit

    def put(self, key: str, result: dict[str, Any], about: dict[str, Any]) -> None:
        self.mem[key] = result
        if self.dir is None:
            return
        self.dir.mkdir(parents=True, exist_ok=True)
        tmp = self.dir / f".{key}.{os.getpid()}.tmp"
        tmp.write_text(json.dumps({"result": result, **about, "saved": time.time()}))
        tmp.replace(self.dir / f"{key}.json")  # atomic: a reader never sees half a file


def _one_line(text: str, limit: int = 200) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _export(cand: Candidate, batch: int) -> bytes:
    from hwnas.hardware.profile import onnx_bytes

    if cand.model is None:
        raise HardwareLoopError("no built model to export")
    return onnx_bytes(cand.model, cand.input_shape, batch)


# ------------------------------------------------------------------------ command runner
class _AttemptFailed(Exception):
    def __init__(self, reason: str, gone: bool = False) -> None:
        super().__init__(reason)
        self.gone = gone  # the board did not answer (an "unreachable" exit code)


_PLACEHOLDER = re.compile(r"\{\{|\}\}|\{(model|input_shape|input_name|batch)\}")


def _json_path(doc: Any, path: str) -> Any:
    node = doc
    for part in path.split("."):
        if isinstance(node, list) and part.lstrip("-").isdigit():
            node = node[int(part)]
        elif isinstance(node, dict):
            node = node[part]
        else:
            raise KeyError(part)
    return node


def parse_figure(stdout: str, regex: str | None, json_key: str | None) -> float:
    """The number the command printed: first group of the first regex match, or a JSON key.

    For JSON, the whole output is tried first, then each line from the last (a benchmark may
    log before it prints its result).
    """
    if regex is not None:
        m = re.search(regex, stdout)
        if m is None:
            last = stdout.strip().splitlines()[-1:] or ["<no output>"]
            raise _AttemptFailed(f"no match for regex {regex!r} (last line: {_one_line(last[0])})")
        text = m.group(1)
    else:
        assert json_key is not None
        docs = []
        for chunk in [stdout, *reversed(stdout.splitlines())]:
            try:
                docs.append(json.loads(chunk))
            except ValueError:
                continue
        for doc in docs:
            try:
                text = _json_path(doc, json_key)
                break
            except (KeyError, IndexError, TypeError):
                continue
        else:
            what = "JSON output" if docs else "output (no JSON found)"
            raise _AttemptFailed(f"key {json_key!r} not in its {what}")
    if isinstance(text, bool):  # JSON true is no figure, though float() reads it as 1
        raise _AttemptFailed(f"{json.dumps(text)} is not a number")
    try:
        value = float(text)
    except (TypeError, ValueError):
        raise _AttemptFailed(f"{_one_line(str(text), 60)!r} is not a number") from None
    # a net costs something (every metric a command may name is a time, an energy, a size
    # or a count of a net): a 0, a benchmark that failed quietly, would lead the front
    if not math.isfinite(value) or value <= 0:
        raise _AttemptFailed(f"{value:g} is not a finite positive figure")
    return value


def _kill(proc: subprocess.Popen[str]) -> None:
    """Kill the command and everything it started (e.g. ssh and its children)."""
    try:
        if os.name == "posix":
            os.killpg(proc.pid, signal.SIGKILL)
        else:
            proc.kill()
    except OSError:
        pass


class CommandCostModel(CostModel):
    """Runs the configured argument list on each candidate's ONNX file and parses the figure."""

    def __init__(self, cfg: CommandTarget) -> None:
        self.cfg = cfg
        self.where = cfg._key  # the config key errors about these settings name
        self.cache = ResultCache(cfg.cache_dir)
        self.runs = 0  # command invocations, for tests and reports

    @property
    def label(self) -> str:
        return _one_line(" ".join(self.cfg.command), 60)

    def argv(self, model_path: str, input_shape: tuple[int, ...]) -> list[str]:
        values = {
            "model": model_path,
            "input_shape": ",".join(str(d) for d in (self.cfg.batch, *input_shape)),
            "input_name": "input",
            "batch": str(self.cfg.batch),
        }

        def sub(m: re.Match[str]) -> str:
            return m.group(0)[0] if m.group(1) is None else values[m.group(1)]

        # {{ and }} are literal braces; other braces (a JSON argument) stay as written
        return [_PLACEHOLDER.sub(sub, arg) for arg in self.cfg.command]

    def check(self) -> None:
        """The command's program must exist and be executable before a search writes its
        study (a mistyped path failed only in the first trial, or in a lookup table's build).
        The board behind it is not contacted: one run of the command may flash a board."""
        prog = self.cfg.command[0]
        if _PLACEHOLDER.search(prog) or shutil.which(prog) is not None:
            return
        there = Path(prog)
        if there.is_dir():
            why = "is a directory"
        elif there.exists() and os.sep not in prog:  # a name is looked up on PATH alone
            why = f"not on PATH (give ./{prog} for the one in this folder)"
        else:
            why = "not executable" if there.exists() else "not found"
        raise HardwareLoopError(f"{self.where}.command: cannot start {prog!r}: {why}")

    def _attempt(self, argv: list[str]) -> float:
        self.runs += 1
        try:
            proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                errors="replace",
                start_new_session=os.name == "posix",  # its own process group, killed as one
            )
        except OSError as exc:  # not found / not executable: no retry can help
            raise HardwareLoopError(
                f"command {self.label!r}: cannot start {argv[0]!r}: {exc.strerror or exc}"
            ) from None
        try:
            out, err = proc.communicate(timeout=self.cfg.timeout)
        except subprocess.TimeoutExpired:
            _kill(proc)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=5)
            # a slow net looks the same as a hung board: the net's failure, as for `remote`
            raise _AttemptFailed(
                f"timed out after {self.cfg.timeout:g} s (raise target.timeout for slow models)"
            ) from None
        except BaseException:  # Ctrl-C / SIGTERM: the command must not outlive the search
            _kill(proc)
            raise
        if proc.returncode != 0:
            last = err.strip().splitlines()[-1:] or out.strip().splitlines()[-1:] or [""]
            raise _AttemptFailed(
                f"exit code {proc.returncode}: {_one_line(last[0])}",
                gone=proc.returncode in self.cfg.unreachable_exit_codes,
            )
        return parse_figure(out, self.cfg.regex, self.cfg.json_key) * self.cfg.scale

    def measure_onnx(
        self, model_bytes: bytes, input_shape: tuple[int, ...], fresh: bool = False
    ) -> float:
        """The figure for one ONNX model (cached unless ``fresh``), after retries; raises
        HardwareLoopError."""
        key = None
        if self.cfg.cache and not fresh:
            settings = self.cfg.model_dump(
                include={"command", "regex", "json_key", "scale", "batch", "metric"}
            )
            key = _key("command", graph_key(model_bytes), list(input_shape), settings)
            hit = self.cache.get(key)
            if hit is not None:
                return float(hit["value"])
        attempts = self.cfg.retries + 1
        reason, gone = "", False
        with tempfile.TemporaryDirectory(prefix="hwnas-cmd-") as tmp:
            path = Path(tmp) / "model.onnx"
            path.write_bytes(model_bytes)
            argv = self.argv(str(path), input_shape)
            for i in range(attempts):
                if i:
                    time.sleep(self.cfg.backoff * 2 ** (i - 1))
                try:
                    value = self._attempt(argv)
                    break
                except _AttemptFailed as exc:
                    reason, gone = str(exc), exc.gone
            else:
                error = DeviceUnreachable if gone else HardwareLoopError
                raise error(f"command {self.label!r} failed {attempts} time(s); last: {reason}")
        if key is not None:
            self.cache.put(key, {"value": value}, {"command": self.cfg.command})
        return value

    def costs(self, cand: Candidate) -> dict[str, float]:
        value = self.measure_onnx(_export(cand, self.cfg.batch), cand.input_shape)
        return {self.cfg.metric: value}

    def remeasure(self, cand: Candidate) -> dict[str, float]:
        value = self.measure_onnx(_export(cand, self.cfg.batch), cand.input_shape, fresh=True)
        return {self.cfg.metric: value}


# ------------------------------------------------------------------------ agent client
def agent_reading(result: dict[str, Any]) -> dict[str, float]:
    """The metrics of an agent's answer to ``/measure``."""
    return {"latency_ms": float(result["latency_ms"]), "latency_spread": float(result["spread"])}


class _Transient(Exception):
    """A failure worth retrying: refused or broken connection, timeout, server error."""


class RemoteCostModel(CostModel):
    """Client of ``hwnas agent serve``: export, POST, read the agent's timing."""

    def __init__(self, cfg: RemoteTarget) -> None:
        self.cfg = cfg
        self.where = where = cfg._key  # the config key errors about the token name
        if cfg.token_env is not None:
            token = os.environ.get(cfg.token_env)
            if not token:
                raise UserError(
                    f"{where}.token_env: environment variable {cfg.token_env} is not set"
                )
        else:
            assert cfg.token is not None
            token = cfg.token.get_secret_value()
            if token == str(cfg.token):  # the mask a study's stored config keeps, not a token
                raise UserError(
                    f"{where}.token: a study keeps the token masked, so its stored config cannot "
                    f"reach the agent; give --config FILE again or --set {where}.token=..., or "
                    "name the token by token_env"
                )
        self._token = token
        parts = urlsplit(cfg.url)
        self._https = parts.scheme == "https"
        self._netloc = parts.netloc
        self._base = parts.path.rstrip("/")
        self.url = f"{parts.scheme}://{parts.netloc}{self._base}"
        self.cache = ResultCache(cfg.cache_dir)
        self._health: dict[str, Any] | None = None
        self.requests = 0  # HTTP requests sent (measurements and health), for tests and reports

    # ------------------------------------------------------------------ HTTP
    def _once(self, method: str, path: str, body: bytes | None) -> dict[str, Any]:
        cls = http.client.HTTPSConnection if self._https else http.client.HTTPConnection
        conn = cls(self._netloc, timeout=self.cfg.timeout)
        headers = {"Authorization": f"Bearer {self._token}"}
        if body is not None:
            headers["Content-Type"] = "application/octet-stream"
        self.requests += 1
        try:
            conn.connect()
        except (OSError, http.client.HTTPException) as exc:  # not up (yet): worth a retry
            conn.close()
            raise _Transient(f"{type(exc).__name__}: {_one_line(str(exc), 120)}") from None
        try:
            conn.request(method, self._base + path, body=body, headers=headers)
            resp = conn.getresponse()
            raw = resp.read()
            status = resp.status
        except TimeoutError:
            if body is not None:  # the agent is still measuring: a retry would queue another
                raise HardwareLoopError(
                    f"agent {self.url} gave no answer within {self.cfg.timeout:g} s while "
                    "measuring; raise target.timeout for slow models"
                ) from None
            raise _Transient(f"timed out after {self.cfg.timeout:g} s") from None
        except (OSError, http.client.HTTPException) as exc:
            raise _Transient(f"{type(exc).__name__}: {_one_line(str(exc), 120)}") from None
        finally:
            conn.close()
        try:
            payload = json.loads(raw)
        except ValueError:
            payload = {"error": _one_line(raw.decode(errors="replace"), 120)}
        if status >= 500:
            raise _Transient(f"HTTP {status}: {payload.get('error', '')}")
        if status == 401:
            raise HardwareLoopError(
                f"agent {self.url} refused the token (401): check {self.where}.token / token_env"
            )
        if status == 413:
            raise HardwareLoopError(f"agent {self.url} refused the model (413): {payload['error']}")
        if status != 200:
            raise HardwareLoopError(
                f"agent {self.url} answered {status}: {payload.get('error', 'no reason given')}"
            )
        return dict(payload)

    def _call(self, method: str, path: str, body: bytes | None = None) -> dict[str, Any]:
        """One request, retried after transient failures with a doubling backoff."""
        attempts = self.cfg.retries + 1
        reason = ""
        for i in range(attempts):
            if i:
                time.sleep(self.cfg.backoff * 2 ** (i - 1))
            try:
                return self._once(method, path, body)
            except _Transient as exc:
                reason = str(exc)
        raise DeviceUnreachable(
            f"agent {self.url} failed {attempts} time(s) (connection refused, broken or timed "
            f"out); last: {reason}"
        )

    def check(self) -> None:
        """The agent must answer before a search starts: unreachable, every trial would fail."""
        try:
            self.health()
        except HardwareLoopError as exc:
            raise HardwareLoopError(
                f"target: remote: {exc}; is `hwnas agent serve` running there?"
            ) from None

    def health(self) -> dict[str, Any]:
        """The agent's fingerprint (asked once): device, runtime, limits."""
        if self._health is None:
            self._health = self._call("GET", "/health")
        return self._health

    # ------------------------------------------------------------------ measuring
    def measure_onnx(self, model_bytes: bytes, fresh: bool = False) -> dict[str, Any]:
        """The agent's timing of one ONNX model (cached by graph, device and settings, unless
        ``fresh``: then measured again and not cached)."""
        info = self.health()
        settings = {
            "runs": self.cfg.runs,
            "warmup": self.cfg.warmup,
            "blocks": self.cfg.blocks,
            "batch": self.cfg.batch,
            "threads": self.cfg.threads or int(info.get("threads", 1)),
        }
        key = None
        if self.cfg.cache and not fresh:
            device = {k: info.get(k) for k in ("host", "cpu", "cores", "machine", "onnxruntime")}
            key = _key("remote", graph_key(model_bytes), device, settings)
            hit = self.cache.get(key)
            if hit is not None:
                return hit
        limit = int(info.get("max_bytes", 0))
        if limit and len(model_bytes) > limit:
            raise HardwareLoopError(
                f"model of {len(model_bytes)} bytes is over agent {self.url}'s limit of "
                f"{limit} (its --max-bytes)"
            )
        result = self._call("POST", "/measure?" + urlencode(settings), model_bytes)
        if key is not None:
            self.cache.put(key, result, {"url": self.url})
        return result

    def costs(self, cand: Candidate, fresh: bool = False) -> dict[str, float]:
        return agent_reading(self.measure_onnx(_export(cand, self.cfg.batch), fresh=fresh))

    def remeasure(self, cand: Candidate) -> dict[str, float]:
        return self.costs(cand, fresh=True)


# ------------------------------------------------------------------ either board
def board_figures(
    model: RemoteCostModel | CommandCostModel,
    model_bytes: bytes,
    input_shape: tuple[int, ...],
    fresh: bool = False,
) -> dict[str, float]:
    """One ONNX file's figures from a board: the agent's reading, or the command's metric
    (``input_shape``, C,H,W, is what the command is told)."""
    if isinstance(model, CommandCostModel):
        return {model.cfg.metric: model.measure_onnx(model_bytes, input_shape, fresh=fresh)}
    return agent_reading(model.measure_onnx(model_bytes, fresh=fresh))


# ------------------------------------------------------------------ lookup tables
class BoardMeter:
    """Times one graph on a board, for a lookup table (``runtime: board``): the graph goes out
    as an ONNX file to the agent or the command, and the board's own protocol reads it. Each
    reading is fresh: the table keeps its own readings, and a cached one would settle an entry
    on one sample."""

    def __init__(self, board: RemoteTarget | CommandTarget) -> None:
        from hwnas.hardware.config import RemoteTarget

        self.batch = board.batch
        self.model: RemoteCostModel | CommandCostModel = (
            RemoteCostModel(board) if isinstance(board, RemoteTarget) else CommandCostModel(board)
        )

    def fingerprint(self) -> dict[str, Any]:
        """What the board's figures depend on: its device and protocol (a remote agent's
        answer to /health), or the command and how its output is read."""
        if isinstance(self.model, RemoteCostModel):
            cfg, info = self.model.cfg, self.model.health()
            return {
                "board": "remote",
                "device": {k: info.get(k) for k in ("host", "cpu", "cores", "machine")},
                "runtime_version": info.get("onnxruntime"),
                "threads": cfg.threads or int(info.get("threads", 1)),
                "protocol": [cfg.warmup, cfg.runs, cfg.blocks],
            }
        c = self.model.cfg
        return {
            "board": "command",
            "command": c.command,
            "read": c.regex or c.json_key,
            "scale": c.scale,  # a figure in us and one in ms are other tables
        }

    def check(self) -> None:
        """An agent must answer (and a stored config's masked token is refused), and a
        command's program must be there, before a search starts, not trial by trial."""
        self.model.check()

    def measure(self, model: Any, input_shape: tuple[int, int, int]) -> Any:
        from hwnas.hardware.profile import onnx_bytes

        return self.measure_onnx(onnx_bytes(model, input_shape, self.batch), input_shape)

    def measure_onnx(self, model_bytes: bytes, input_shape: tuple[int, int, int]) -> Any:
        from hwnas.hardware.profile import Timing

        got = board_figures(self.model, model_bytes, input_shape, fresh=True)
        # a command's one figure is its latency metric (`latency_ms` or `latency_ms@label`)
        ms = next(v for k, v in got.items() if k != "latency_spread")
        spread = got.get("latency_spread", 0.0)
        return Timing(latency_ms=ms, spread=spread, block_medians_ms=(ms,), runs=1)
