"""The device agent: ``hwnas agent serve`` times ONNX models sent over HTTP on the board it runs on.

The search host exports each candidate to ONNX and POSTs it; the agent times it with the same
protocol as the local ``cpu-ort`` target (:meth:`OrtCpuMeter.measure_onnx`) and answers JSON.
Only the standard library, numpy and onnxruntime are needed: torch never loads here, so a
small board needs neither torch nor a compiler.

Security: every request needs the token (``Authorization: Bearer``), compared in constant
time; a body's size is checked from ``Content-Length`` before a byte of it is read and no more
than that is ever read; the model is only handed to ONNX Runtime (nothing is run as a command
or written to disk). One measurement runs at a time, so concurrent clients cannot disturb each
other's timing. The agent speaks plain HTTP: on an untrusted network put it behind an SSH
tunnel or a TLS proxy (docs/remote.md).
"""

from __future__ import annotations

import hmac
import json
import os
import platform
import re
import socket
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from hwnas.hardware.host import cpu_model

DEFAULT_PORT = 8765
DEFAULT_MAX_BYTES = 64 * 2**20
#: values in a model's input tensor (batch included): 64 MiB of float32
DEFAULT_MAX_INPUT = 2**24
#: seconds one measurement may run before it is stopped (an endless Loop holds no lock forever)
DEFAULT_TIME_LIMIT = 60.0
#: accepted ranges of the measurement settings a request may ask for
LIMITS: dict[str, tuple[int, int]] = {
    "runs": (5, 10000),
    "warmup": (0, 10000),
    "blocks": (1, 1000),
    "batch": (1, 1024),
    "threads": (1, 256),
}
_DRAIN_CAP = 1 << 20  # unread body bytes swallowed after a refusal, so the client reads the reply
_CHUNK = 1 << 16


def fingerprint(threads: int, max_bytes: int) -> dict[str, Any]:
    """What identifies the timing: device, runtime and default threads (part of cache keys)."""
    import onnxruntime as ort

    from hwnas.core.version import __version__

    return {
        "agent": "hwnas",
        "hwnas": __version__,
        "host": platform.node(),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "machine": platform.machine(),
        "system": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "onnxruntime": ort.__version__,
        "threads": threads,
        "max_bytes": max_bytes,
    }


class Agent:
    """State shared by the request threads: settings, the measurement lock, counters."""

    def __init__(
        self,
        token: str,
        max_bytes: int,
        threads: int,
        max_input: int = DEFAULT_MAX_INPUT,
        time_limit: float = DEFAULT_TIME_LIMIT,
    ) -> None:
        self.token = token.encode()
        self.max_bytes, self.threads, self.max_input = max_bytes, threads, max_input
        self.time_limit = time_limit
        self.info = fingerprint(threads, max_bytes)
        self.lock = threading.Lock()  # one measurement at a time: they would disturb each other
        self.stats_lock = threading.Lock()
        self.stats: dict[str, int] = {"requests": 0, "measured": 0, "refused": 0, "failed": 0}
        self.busy = False

    def count(self, key: str) -> None:
        with self.stats_lock:
            self.stats[key] += 1

    def authorised(self, header: str | None) -> bool:
        scheme, _, given = (header or "").partition(" ")
        # compare_digest takes time independent of where the strings differ
        return scheme.lower() == "bearer" and hmac.compare_digest(
            given.strip().encode(), self.token
        )

    def measure(self, model: bytes, settings: dict[str, int]) -> dict[str, Any]:
        from hwnas.hardware.profile import OrtCpuMeter

        meter = OrtCpuMeter(
            threads=settings["threads"],
            warmup=settings["warmup"],
            runs=settings["runs"],
            blocks=settings["blocks"],
            batch=settings["batch"],
        )
        with self.lock:
            self.busy = True
            t0 = time.perf_counter()
            try:
                timing = meter.measure_onnx(
                    model, max_input_values=self.max_input, time_limit=self.time_limit
                )
            finally:
                self.busy = False
        return {
            "latency_ms": timing.latency_ms,
            "spread": timing.spread,
            "block_medians_ms": list(timing.block_medians_ms),
            **settings,
            "runs": timing.runs,
            "seconds": time.perf_counter() - t0,
            "onnxruntime": self.info["onnxruntime"],
            "cpu": self.info["cpu"],
        }


def _redact(text: str) -> str:
    """``text`` with every URL query string cut to ``?…``."""
    return re.sub(r"\?[^\s\"]*", "?…", text)


#: seconds a client has to send its request line and headers (an idle socket is dropped then)
HEADER_TIMEOUT = 10
#: seconds a model upload may stall before the connection is dropped
BODY_TIMEOUT = 120
#: connections served at once; more are closed at once
MAX_CONNECTIONS = 1024


class _Refused(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def _settings(query: str, default_threads: int) -> dict[str, int]:
    """Measurement settings from the query string, each checked against :data:`LIMITS`."""
    out = {"runs": 60, "warmup": 10, "blocks": 6, "batch": 1, "threads": default_threads}
    for key, values in parse_qs(query, keep_blank_values=True).items():
        if key not in LIMITS:
            raise _Refused(400, f"unknown parameter {key!r}; known: {', '.join(LIMITS)}")
        lo, hi = LIMITS[key]
        try:
            value = int(values[-1])
        except ValueError:
            raise _Refused(400, f"{key}={values[-1]!r} is not an integer") from None
        if not lo <= value <= hi:
            raise _Refused(400, f"{key}={value} is outside {lo}..{hi}")
        out[key] = value
    if out["blocks"] > out["runs"]:
        raise _Refused(400, "blocks must be <= runs")
    return out


class _Handler(BaseHTTPRequestHandler):
    server_version = "hwnas-agent"
    timeout = HEADER_TIMEOUT  # an idle or slow-header client frees its thread after this
    agent: Agent  # set on the subclass made by make_server

    # ------------------------------------------------------------------ plumbing
    def _reply(self, status: int, payload: dict[str, Any], drain: int = 0) -> None:
        body = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        if status == 401:
            self.send_header("WWW-Authenticate", 'Bearer realm="hwnas-agent"')
        self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True
        if drain:
            self._drain(drain)

    def _drain(self, nbytes: int) -> None:
        """Swallow (a bounded part of) an unread body, so closing sends no reset before the reply."""
        try:
            self.wfile.flush()
            self.connection.shutdown(socket.SHUT_WR)
            self.connection.settimeout(1.0)
            left = min(nbytes, _DRAIN_CAP)
            while left > 0:
                got = self.rfile.read1(min(left, _CHUNK))  # type: ignore[attr-defined]
                if not got:
                    break
                left -= len(got)
        except OSError:
            pass

    def _content_length(self) -> int:
        text = self.headers.get("Content-Length")
        if text is None:
            raise _Refused(411, "Content-Length required")
        try:
            n = int(text)
        except ValueError:
            raise _Refused(400, f"bad Content-Length {text!r}") from None
        if n < 0:
            raise _Refused(400, f"bad Content-Length {text!r}")
        return n

    def _read_body(self, n: int) -> bytes:
        """Exactly ``n`` bytes (already checked against the limit), read in chunks."""
        parts, left = [], n
        while left > 0:
            got = self.rfile.read(min(left, _CHUNK))
            if not got:
                raise _Refused(400, f"body ended after {n - left} of {n} bytes")
            parts.append(got)
            left -= len(got)
        return b"".join(parts)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        # never a query string in the log: a client may have put a secret there
        text = " ".join(_redact(str(a)) for a in [format % args])
        sys.stderr.write(f"hwnas agent: {self.address_string()} {text}\n")

    # ------------------------------------------------------------------ requests
    def _guard(self) -> str | None:
        """The request path if authorised; otherwise the 401 is already sent."""
        self.agent.count("requests")
        if not self.agent.authorised(self.headers.get("Authorization")):
            self.agent.count("refused")
            length = self.headers.get("Content-Length", "0")
            drain = int(length) if length.isascii() and length.isdigit() and len(length) < 19 else 0
            self._reply(401, {"error": "missing or wrong token"}, drain=drain)
            return None
        return urlsplit(self.path).path.rstrip("/") or "/"

    def do_GET(self) -> None:  # noqa: N802 - stdlib name
        path = self._guard()
        if path is None:
            return
        if path == "/health":
            self._reply(200, {"status": "ok", "busy": self.agent.busy, **self.agent.info})
        elif path == "/stats":
            with self.agent.stats_lock:
                stats = dict(self.agent.stats)
            self._reply(200, {**stats, "busy": self.agent.busy})
        else:
            self._reply(404, {"error": f"no such endpoint {path}; try /health, /stats, /measure"})

    def do_POST(self) -> None:  # noqa: N802 - stdlib name
        path = self._guard()
        if path is None:
            return
        n = 0
        try:
            n = self._content_length()
            if path != "/measure":
                raise _Refused(404, f"no such endpoint {path}; POST a model to /measure")
            if n > self.agent.max_bytes:
                raise _Refused(
                    413, f"model of {n} bytes is over this agent's {self.agent.max_bytes}"
                )
            settings = _settings(urlsplit(self.path).query, self.agent.threads)
            self.connection.settimeout(BODY_TIMEOUT)  # a model upload may take a while
            model = self._read_body(n)
            n = 0  # read: nothing left to drain
        except _Refused as exc:
            self.agent.count("refused")
            self._reply(exc.status, {"error": str(exc)}, drain=n)
            return
        except OSError as exc:  # stalled past the timeout or went away mid-upload: drop it
            self.agent.count("refused")
            self.log_message("upload abandoned: %s", type(exc).__name__)
            self.close_connection = True
            return
        from hwnas.hardware.profile import InputTooLarge, MeasureTimeout

        try:
            result = self.agent.measure(model, settings)
        except InputTooLarge as exc:  # a small file may declare an input that fills memory
            self.agent.count("refused")
            self._reply(413, {"error": str(exc)})
            return
        except MeasureTimeout as exc:
            self.agent.count("refused")
            self._reply(422, {"error": str(exc)})
            return
        except Exception as exc:  # noqa: BLE001 - the model's fault: ORT could not load or run it
            self.agent.count("failed")
            msg = " ".join(str(exc).split())[:400]
            self._reply(400, {"error": f"cannot run the model: {type(exc).__name__}: {msg}"})
            return
        self.agent.count("measured")
        result["measured"] = self.agent.stats["measured"]
        self._reply(200, result)


class _Server(ThreadingHTTPServer):
    """One thread per connection, at most :data:`MAX_CONNECTIONS` at once: past that a new
    connection is closed at once, so idle sockets cannot take every thread the host has."""

    daemon_threads = True  # a stalled client never blocks shutdown
    request_queue_size = 128

    def server_activate(self) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().server_activate()

    def process_request(self, request: Any, client_address: Any) -> None:
        if not self._slots.acquire(blocking=False):
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)  # type: ignore[misc]
        finally:
            self._slots.release()


class _Server6(_Server):
    address_family = socket.AF_INET6


def make_server(
    host: str,
    port: int,
    token: str,
    max_bytes: int = DEFAULT_MAX_BYTES,
    threads: int = 1,
    max_input: int = DEFAULT_MAX_INPUT,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> ThreadingHTTPServer:
    """A bound (not yet serving) agent; ``port`` 0 picks a free port (see ``server_address``)."""
    agent = Agent(token, max_bytes, threads, max_input, time_limit)
    handler = type("Handler", (_Handler,), {"agent": agent})
    cls = _Server6 if ":" in host else _Server  # ":": an IPv6 literal
    server = cls((host, port), handler)
    return server


def serve(
    host: str,
    port: int,
    token: str,
    max_bytes: int,
    threads: int,
    max_input: int,
    time_limit: float = DEFAULT_TIME_LIMIT,
) -> None:
    """Run the agent until interrupted; the first stdout line names the address it listens on."""
    server = make_server(host, port, token, max_bytes, threads, max_input, time_limit)
    bound_host, bound_port = str(server.server_address[0]), server.server_address[1]
    agent: Agent = server.RequestHandlerClass.agent  # type: ignore[attr-defined]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    print(
        f"hwnas agent: listening on http://{shown}:{bound_port} "
        f"(onnxruntime {agent.info['onnxruntime']}, {agent.info['cpu']}, "
        f"{threads} thread(s), max {max_bytes} bytes)",
        flush=True,
    )
    if host not in ("127.0.0.1", "localhost", "::1"):
        print(
            "hwnas agent: reachable from the network; the token travels in clear over plain "
            "HTTP: use a trusted network, an SSH tunnel or a TLS proxy",
            file=sys.stderr,
            flush=True,
        )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
