"""Hardware in the loop: the device agent as a real separate process on loopback, and the
command runner with real commands."""

from __future__ import annotations

import http.client
import json
import os
import random
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import onnxruntime as ort
import pytest
import torch
from conftest import FAST, REPO, fastest_readings, run_cli

from hwnas.core.errors import ConfigError, UserError
from hwnas.experiment.config import load_config, validate_config
from hwnas.hardware.base import Candidate
from hwnas.hardware.profile import OrtCpuMeter, onnx_bytes
from hwnas.hardware.remote import (
    BoardMeter,
    CommandCostModel,
    HardwareLoopError,
    RemoteCostModel,
    graph_key,
)
from hwnas.hardware.targets import make_cost_model
from hwnas.space.chain import ChainSpace

TOKEN = "loopback-test-token-0123456789"
# the agent runs with torch made unimportable: it must work on a board without torch
AGENT_MAIN = (
    "import sys; sys.modules['torch'] = None; "
    "from hwnas.cli import main; sys.exit(main(sys.argv[1:]))"
)


class Agent:
    """``hwnas agent serve`` in its own process, on a free loopback port."""

    def __init__(self, logdir: Path, *args: str, port: int = 0) -> None:
        self.logdir = logdir
        n = len(list(logdir.glob("agent-*.out")))
        self.out, self.err = logdir / f"agent-{n}.out", logdir / f"agent-{n}.err"
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", AGENT_MAIN, "agent", "serve", "--port", str(port), *args],
                stdout=out,
                stderr=err,
                env={**os.environ, "HWNAS_AGENT_TOKEN": TOKEN},
                cwd=REPO,
            )
        deadline = time.monotonic() + 30
        while not (m := re.search(r"listening on (http://\S+)", self.out.read_text())):
            assert self.proc.poll() is None, f"agent exited: {self.err.read_text()}"
            assert time.monotonic() < deadline, "agent did not start in 30 s"
            time.sleep(0.05)
        self.url = m.group(1)
        self.port = int(self.url.rsplit(":", 1)[1])
        status, info = self.request("GET", "/health")
        assert status == 200 and info["status"] == "ok", info

    def request(
        self,
        method: str,
        path: str,
        body: bytes | None = None,
        token: str | None = TOKEN,
        headers: dict[str, str] | None = None,
    ) -> tuple[int, dict[str, Any]]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        hdrs = dict(headers or {})
        if token is not None:
            hdrs["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=body, headers=hdrs)
        resp = conn.getresponse()
        out = resp.status, json.loads(resp.read())
        conn.close()
        return out

    def stats(self) -> dict[str, Any]:
        status, stats = self.request("GET", "/stats")
        assert status == 200
        return stats

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(10)


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    a = Agent(tmp_path_factory.mktemp("agent"))
    yield a
    a.stop()


@pytest.fixture(scope="module")
def space():
    return ChainSpace(load_config(None, FAST).space)


def candidate(space, seed: int = 0, shape=(1, 8, 8), weights_seed: int = 0) -> Candidate:
    arch = space.sample(random.Random(seed))
    torch.manual_seed(weights_seed)
    return Candidate(arch, space, shape, space.build(arch, shape, 10))


def remote(url: str, **kw: Any) -> RemoteCostModel:
    raw = {"name": "remote", "url": url, "token": TOKEN, "runs": 20, "blocks": 4, "warmup": 3}
    cfg = validate_config({"target": {**raw, **kw}})
    model = make_cost_model(cfg.target)
    assert isinstance(model, RemoteCostModel)
    return model


# -------------------------------------------------------------------------- agent
def test_agent_times_a_model_as_the_local_meter_does(agent, space):
    cand = candidate(space)
    model = onnx_bytes(cand.model, cand.input_shape)
    client = remote(agent.url, runs=30, blocks=3, warmup=5, cache=False)
    info = client.health()
    assert info["onnxruntime"] == ort.__version__ and info["cpu"] and info["cores"] >= 1
    res = client.measure_onnx(model)
    assert res["runs"] == 30 and len(res["block_medians_ms"]) == 3 and res["threads"] == 1
    assert res["latency_ms"] == min(res["block_medians_ms"]) > 0
    assert res["onnxruntime"] == ort.__version__
    meter = OrtCpuMeter(threads=1, warmup=5, runs=30, blocks=3)
    # same protocol on the same CPU; loose bounds because the host is shared (the 5 % figure
    # is benchmarks/agent_loopback.py's job)
    remote_ms, local_ms = fastest_readings(
        lambda: [client.measure_onnx(model)["latency_ms"], meter.measure_onnx(model).latency_ms],
        lambda r: 1 / 3 < r[0] / r[1] < 3,
        first=[res["latency_ms"], meter.measure_onnx(model).latency_ms],
    )
    assert 1 / 3 < remote_ms / local_ms < 3
    costs = client.costs(cand)
    assert set(costs) == {"latency_ms", "latency_spread"} and costs["latency_ms"] > 0


def test_agent_refuses_missing_or_wrong_token(agent, space):
    before = agent.stats()["measured"]
    assert agent.request("GET", "/health", token=None)[0] == 401
    assert agent.request("GET", "/stats", token="loopback-test-token-0123456788")[0] == 401
    model = onnx_bytes(candidate(space).model, (1, 8, 8))
    status, body = agent.request("POST", "/measure", model, token="nope")
    assert status == 401 and "token" in body["error"]
    assert agent.stats()["measured"] == before
    # the client says why and does not retry a refusal (a retry would sleep 5 s)
    client = remote(agent.url, token="wrong-token", retries=3, backoff=5.0)
    t0 = time.monotonic()
    with pytest.raises(HardwareLoopError, match=r"refused the token \(401\)"):
        client.costs(candidate(space))
    assert time.monotonic() - t0 < 4
    assert client.requests == 1


def test_agent_refuses_oversize_and_malformed_requests(agent, tmp_path, space):
    small = Agent(tmp_path, "--max-bytes", "4096")
    try:
        # refused from Content-Length alone: no body is ever sent
        conn = http.client.HTTPConnection("127.0.0.1", small.port, timeout=10)
        conn.putrequest("POST", "/measure")
        conn.putheader("Authorization", f"Bearer {TOKEN}")
        conn.putheader("Content-Length", str(10**9))
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status == 413 and "over this agent's 4096" in json.loads(resp.read())["error"]
        conn.close()
        assert small.request("POST", "/measure", b"\0" * 10_000)[0] == 413
        assert small.request("POST", "/measure", b"\0" * 100)[0] == 400  # fits, but not ONNX
        # the client checks the agent's limit before sending
        client = remote(small.url)
        with pytest.raises(HardwareLoopError, match=r"over agent .* limit of 4096"):
            client.costs(candidate(space))
        assert small.stats()["measured"] == 0
    finally:
        small.stop()
    status, body = agent.request("POST", "/measure", b"not an onnx model")
    assert status == 400 and "cannot run the model" in body["error"]
    assert agent.request("POST", "/measure?runs=2", b"x")[0] == 400  # below the 5-run minimum
    assert agent.request("POST", "/measure?sleep=1", b"x")[0] == 400  # unknown parameter
    client = remote(agent.url, cache=False)
    with pytest.raises(HardwareLoopError, match=r"answered 400: cannot run the model"):
        client.measure_onnx(b"not an onnx model either")


def test_client_cache_avoids_a_second_measurement(agent, space, tmp_path):
    cache = tmp_path / "cache"
    client = remote(agent.url, cache_dir=str(cache))
    start = agent.stats()["measured"]
    first = client.costs(candidate(space, seed=1))
    assert agent.stats()["measured"] == start + 1
    # same arch, other weights: other bytes, same graph, no new measurement
    again = candidate(space, seed=1, weights_seed=7)
    b1 = onnx_bytes(candidate(space, seed=1).model, (1, 8, 8))
    b2 = onnx_bytes(again.model, (1, 8, 8))
    assert b1 != b2 and graph_key(b1) == graph_key(b2)
    assert client.costs(again) == first
    assert agent.stats()["measured"] == start + 1 and client.cache.hits == 1
    # a new client (a new search) finds it on disk: only the health request is sent
    fresh = remote(agent.url, cache_dir=str(cache))
    assert fresh.costs(candidate(space, seed=1)) == first
    assert fresh.requests == 1 and agent.stats()["measured"] == start + 1
    # other settings are another measurement
    remote(agent.url, cache_dir=str(cache), runs=24).costs(candidate(space, seed=1))
    assert agent.stats()["measured"] == start + 2


def _busy(agent: Agent) -> None:
    deadline = time.monotonic() + 30
    while not agent.stats()["busy"]:
        assert time.monotonic() < deadline, "measurement never started"
        time.sleep(0.02)


def test_agent_killed_mid_measurement(tmp_path):
    cand = candidate(ChainSpace(load_config(None, []).space), seed=3, shape=(3, 32, 32))
    model = onnx_bytes(cand.model, cand.input_shape)
    dying = Agent(tmp_path)
    # gives up: retries with backoff, then one line that says what happened
    client = remote(dying.url, runs=10000, blocks=5, retries=2, backoff=0.2, cache=False)
    client.health()
    errors: list[BaseException] = []
    t = threading.Thread(target=lambda: _catch(errors, client.measure_onnx, model))
    t.start()
    _busy(dying)
    dying.stop()
    t.join(30)
    assert not t.is_alive()
    assert len(errors) == 1 and isinstance(errors[0], HardwareLoopError)
    msg = str(errors[0])
    assert msg.startswith(f"agent {dying.url} failed 3 time(s)") and "\n" not in msg
    assert "ConnectionRefusedError" in msg  # the retries found nobody listening
    assert client.requests == 1 + 3  # health + three attempts

    # recovers: the agent comes back on the same port while the client backs off
    back = Agent(tmp_path)
    client = remote(back.url, runs=2000, blocks=4, retries=8, backoff=0.25, cache=False)
    client.health()
    results: list[Any] = []
    t = threading.Thread(target=lambda: _catch(results, client.measure_onnx, model))
    t.start()
    _busy(back)
    back.stop()
    again = Agent(tmp_path, port=back.port)
    try:
        t.join(60)
        assert not t.is_alive() and len(results) == 1, results
        assert not isinstance(results[0], BaseException), results[0]
        assert results[0]["latency_ms"] > 0 and client.requests >= 3
    finally:
        again.stop()


def _catch(sink: list[Any], fn: Any, *args: Any) -> None:
    try:
        sink.append(fn(*args))
    except BaseException as exc:  # noqa: BLE001 - handed to the test thread
        sink.append(exc)


def test_agent_cli_needs_a_token():
    res = subprocess.run(
        [sys.executable, "-m", "hwnas.cli", "agent", "serve", "--port", "0"],
        capture_output=True,
        text=True,
        env={k: v for k, v in os.environ.items() if k != "HWNAS_AGENT_TOKEN"},
        cwd=REPO,
        timeout=60,
    )
    assert res.returncode == 2 and "a token is required" in res.stderr


# ------------------------------------------------------------------ command runner
def command(*argv: str, **kw: Any) -> CommandCostModel:
    raw = {"name": "command", "command": list(argv), "backoff": 0.0, **kw}
    if "json_key" not in raw:
        raw.setdefault("regex", r"latency: ([0-9.]+) ms")
    # the objectives name what the command measures: a run whose sources give no objective
    # metric is refused
    objectives = {"accuracy": "max", raw.get("metric", "latency_ms"): "min"}
    model = make_cost_model(validate_config({"target": raw, "objectives": objectives}).target)
    assert isinstance(model, CommandCostModel)
    return model


PY = sys.executable
# prints the product of the input shape's dimensions as the latency: proves the substitution
SHAPE_SCRIPT = (
    "import math, os, sys\n"
    "assert open(sys.argv[1], 'rb').read(2) and os.path.getsize(sys.argv[1]) > 100\n"
    "assert sys.argv[3] == '{\"keep\": 1}'\n"
    "print('loading', sys.argv[1])\n"
    "print('latency: %s ms' % math.prod(int(d) for d in sys.argv[2].split(',')))\n"
)


def test_command_regex_json_and_cache(space, tmp_path):
    cmd = command(PY, "-c", SHAPE_SCRIPT, "{model}", "{input_shape}", '{"keep": 1}', scale=0.5)
    cand = candidate(space)
    assert cmd.costs(cand) == {"latency_ms": 32.0}  # 1*1*8*8 * 0.5
    assert cmd.costs(candidate(space, weights_seed=5)) == {"latency_ms": 32.0}
    assert cmd.runs == 1  # answered from the cache
    assert cmd.costs(candidate(space, shape=(3, 32, 32))) == {"latency_ms": 1536.0}
    assert cmd.runs == 2

    script = (
        "import json; print('warming up'); "
        "print(json.dumps({'result': {'runs_ms': [1.5, 2.25]}, 'device': 'x'}))"
    )
    cmd = command(PY, "-c", script, "{model}", json_key="result.runs_ms.1", metric="energy_mj")
    assert cmd.costs(cand) == {"energy_mj": 2.25}
    with pytest.raises(HardwareLoopError, match=r"key 'result.nope' not in its JSON output"):
        command(PY, "-c", script, "{model}", json_key="result.nope", retries=0).costs(cand)


def test_command_failures_are_one_line_after_retries(space, tmp_path):
    cand = candidate(space)
    # a flaky device: the first run fails, the retry succeeds
    counter = tmp_path / "count"
    flaky = (
        "import sys, pathlib\n"
        f"p = pathlib.Path({str(counter)!r}); n = len(p.read_text()) if p.exists() else 0\n"
        "p.write_text('x' * (n + 1))\n"
        "sys.exit('device busy') if n == 0 else print('latency: 0.75 ms')\n"
    )
    cmd = command(PY, "-c", flaky, "{model}", retries=1)
    assert cmd.costs(cand) == {"latency_ms": 0.75} and cmd.runs == 2

    hang = command(PY, "-c", "import time; time.sleep(30)", "{model}", timeout=0.5, retries=1)
    t0 = time.monotonic()
    with pytest.raises(HardwareLoopError) as err:
        hang.costs(cand)
    assert time.monotonic() - t0 < 15  # killed, not waited for
    assert str(err.value).endswith(
        "failed 2 time(s); last: timed out after 0.5 s (raise target.timeout for slow models)"
    )

    fail = "import sys; print('x'); sys.stderr.write('log\\nboom: device offline\\n'); sys.exit(3)"
    with pytest.raises(HardwareLoopError, match=r"last: exit code 3: boom: device offline$"):
        command(PY, "-c", fail, "{model}", retries=0).costs(cand)
    with pytest.raises(HardwareLoopError, match=r"no match for regex .* \(last line: 12 us\)"):
        command(PY, "-c", "print('12 us')", "{model}", retries=0).costs(cand)
    # the board gone (ssh's exit 255) is the board's failure, not the net's: it counts
    # towards stopping the search and is run again on resume; a timeout is the net's (a slow
    # net and a hung board look alike: re-run on every resume, it would stop it every time)
    from hwnas.hardware.remote import DeviceUnreachable

    with pytest.raises(DeviceUnreachable, match=r"last: exit code 255: no route to host$"):
        gone = "import sys; sys.stderr.write('no route to host'); sys.exit(255)"
        command(PY, "-c", gone, "{model}", retries=0).costs(cand)
    with pytest.raises(HardwareLoopError, match="raise target.timeout") as slow:
        command(PY, "-c", "import time; time.sleep(30)", "{model}", timeout=0.3).costs(cand)
    assert not isinstance(slow.value, DeviceUnreachable)
    with pytest.raises(HardwareLoopError) as own:  # exit 3: this net's own problem
        command(PY, "-c", fail, "{model}", retries=0, unreachable_exit_codes=[]).costs(cand)
    assert not isinstance(own.value, DeviceUnreachable)
    # a figure no net costs, or none at all, is refused (a 0 led the front)
    for printed, needle in (
        ('{"r": 0}', "0 is not a finite positive figure"),
        ('{"r": true}', "true is not a number"),
    ):
        with pytest.raises(HardwareLoopError, match=needle):
            command(PY, "-c", f"print({printed!r})", "{model}", json_key="r", retries=0).costs(cand)
    missing = command("/nonexistent/bench", "{model}", retries=5, backoff=10.0)
    t0 = time.monotonic()
    with pytest.raises(HardwareLoopError, match=r"cannot start '/nonexistent/bench'"):
        missing.costs(cand)
    assert time.monotonic() - t0 < 5 and missing.runs == 1


# -------------------------------------------------------------------------- config
def test_config_of_hardware_in_the_loop_targets(monkeypatch):
    def err(target: dict[str, Any]) -> str:
        with pytest.raises(ConfigError) as e:
            validate_config({"target": target})
        return str(e.value)

    base = {"name": "command", "regex": "(x)"}
    assert "target.command: Input should be a valid list" in err(
        {**base, "command": "ssh board ./bench {model}"}
    )
    assert "unknown placeholder {modle}" in err({**base, "command": ["bench", "{modle}"]})
    assert "put {model} in one of the arguments" in err({**base, "command": ["bench"]})
    assert "needs a group" in err({**base, "command": ["b", "{model}"], "regex": "ms"})
    assert "exactly one of regex or json_key" in err(
        {"name": "command", "command": ["b", "{model}"]}
    )
    assert "exactly one of token or token_env" in err({"name": "remote", "url": "http://b:1"})
    assert "target.url" in err({"name": "remote", "url": "board:8765", "token": "t"})

    cfg = validate_config({"target": {"name": "remote", "url": "http://b:1", "token": TOKEN}})
    assert TOKEN not in json.dumps(cfg.to_json_dict())  # never stored in study.db or reports
    stored = validate_config(cfg.to_json_dict())  # a resume from the study's own config
    with pytest.raises(UserError, match="keeps the token masked.*--config FILE.*token_env"):
        make_cost_model(stored.target)  # it sent the mask, and the agent answered 401
    cfg = validate_config({"target": {"name": "remote", "url": "http://b:1", "token_env": "HW_T"}})
    monkeypatch.delenv("HW_T", raising=False)
    with pytest.raises(UserError, match="environment variable HW_T is not set"):
        make_cost_model(cfg.target)
    monkeypatch.setenv("HW_T", "from-env")
    model = make_cost_model(cfg.target)
    assert isinstance(model, RemoteCostModel) and model._token == "from-env"


# -------------------------------------------------------------------------- search
def remote_search_config(url: str, budget: int) -> Any:
    """A small, fast digits search timed through the agent at ``url``."""
    return load_config(
        None,
        [
            *FAST,
            "estimator.epochs=1",
            "estimator.threads=1",
            "data.subset=0.3",
            "target.name=remote",
            f"target.url={url}",
            f"target.token={TOKEN}",
            "target.runs=20",
            "target.blocks=4",
            "target.warmup=3",
        ],
        budget=budget,
    )


def test_search_with_remote_target(agent, tmp_path):
    import hwnas

    before = agent.stats()["measured"]
    cfg = remote_search_config(agent.url, 3)
    hwnas.run_search(cfg, tmp_path / "run")
    trials = hwnas.Study(tmp_path / "run").trials()
    assert len(trials) == 3
    for t in trials:
        assert t.status == "complete", t.error
        assert t.metrics["latency_ms"] > 0 and "latency_spread" in t.metrics
        assert 0 <= t.metrics["accuracy"] <= 1
    # the front was re-timed on the board (a fresh reading, past the client's cache)
    retimed = [t for t in trials if "latency_readings_ms" in t.metrics]
    front = hwnas.Study(tmp_path / "run").pareto()
    assert front and {t.id for t in front} <= {t.id for t in retimed}
    for t in retimed:
        readings = t.metrics["latency_readings_ms"]
        assert len(readings) == 2 and t.metrics["latency_ms"] == min(readings)
    assert agent.stats()["measured"] == before + 3 + len(retimed)
    db = sqlite3.connect(tmp_path / "run" / "study.db")
    dump = "\n".join(db.iterdump())
    db.close()
    assert TOKEN not in dump


def test_a_device_that_stops_answering_stops_the_search(agent, tmp_path, monkeypatch):
    """A board lost mid-search failed every remaining trial of the budget on it: after a few
    in a row the search stops, says why, and the same command goes on once it answers."""
    import hwnas
    from hwnas.experiment.experiment import MAX_DEVICE_FAILURES
    from hwnas.hardware.remote import DeviceUnreachable, HardwareLoopError, RemoteCostModel

    real, calls = RemoteCostModel.costs, []

    def lost(self, cand, fresh=False):  # the first net is timed, one refused, then none
        calls.append(1)
        if len(calls) == 2:  # this net's own problem: the board answered
            raise HardwareLoopError(f"model over agent {self.cfg.url}'s limit")
        if len(calls) > 2:
            raise DeviceUnreachable(f"agent {self.cfg.url} failed 3 time(s)")
        return real(self, cand, fresh)

    monkeypatch.setattr(RemoteCostModel, "costs", lost)
    result = hwnas.run_search(remote_search_config(agent.url, 8), tmp_path / "run")
    assert result.stopped == "device"
    statuses = [t.status for t in result.trials]
    assert statuses == ["complete"] + ["failed"] * (1 + MAX_DEVICE_FAILURES), statuses
    # the re-timing of the front waits for the board: nothing was read again
    assert len(calls) == 1 + 1 + MAX_DEVICE_FAILURES
    assert "latency_readings_ms" not in result.trials[0].metrics
    lost = result.trials[2:]
    monkeypatch.setattr(RemoteCostModel, "costs", real)  # back: the search goes on
    again = hwnas.run_search(remote_search_config(agent.url, 8), tmp_path / "run")
    assert again.stopped == "budget" and len(again.trials) == 8
    # the nets the silent board failed are judged now, same ids and seeds; the net the
    # board refused stays failed (its own problem)
    by_id = {t.id: t for t in again.trials}
    for t in lost:
        assert by_id[t.id].status == "complete" and by_id[t.id].seed == t.seed
        assert by_id[t.id].arch == t.arch and by_id[t.id].metrics["latency_ms"] > 0
    assert by_id[1].status == "failed" and "limit" in (by_id[1].error or "")
    assert [t.status for t in again.trials].count("complete") == 7
    log = (tmp_path / "run" / "hwnas.log").read_text()
    assert all(f"re-running trial {t.id}: the device did not answer" in log for t in lost)


def test_a_search_on_an_agent_that_does_not_answer_is_refused(tmp_path):
    """Every trial would fail: the search is refused in one line before anything is written."""
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "run"
    r = run_cli(
        "search",
        "--out",
        str(out),
        "--budget",
        "2",
        *[
            a
            for item in [
                "target.name=remote",
                f"target.url=http://127.0.0.1:{port}",
                f"target.token={TOKEN}",
                "target.retries=1",
                "target.backoff=0",
            ]
            for a in ("--set", item)
        ],
    )
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "is `hwnas agent serve` running there?" in lines[0]
    assert "failed 2 time(s)" in lines[0] and not out.exists()


def test_search_goes_on_when_the_device_fails(tmp_path):
    import hwnas

    cfg = validate_config(
        {
            "budget": 2,
            "target": {
                "name": "command",
                "command": [PY, "-c", "import sys; sys.exit('no board')", "{model}"],
                "regex": "([0-9.]+)",
                "retries": 1,
                "backoff": 0,
            },
            "estimator": {"epochs": 1},
        }
    )
    hwnas.run_search(cfg, tmp_path / "run")
    trials = hwnas.Study(tmp_path / "run").trials()
    assert len(trials) == 2
    for t in trials:
        assert t.status == "failed"
        assert t.error.endswith("failed 2 time(s); last: exit code 1: no board"), t.error


def test_a_silent_agent_is_not_asked_again(space):
    """A measurement that outlasts the timeout is not retried: the agent would queue another."""
    import socket
    import threading

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(8)
    accepted: list[socket.socket] = []

    def accept() -> None:
        while True:
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            accepted.append(conn)  # read nothing, answer nothing

    threading.Thread(target=accept, daemon=True).start()
    model = remote(f"http://127.0.0.1:{srv.getsockname()[1]}", timeout=0.5, retries=3)
    model._health = {"max_bytes": 10**9}  # skip the health call: measure directly
    try:
        with pytest.raises(HardwareLoopError, match="no answer within 0.5 s"):
            model.costs(candidate(space))
        assert len(accepted) == 1
    finally:
        srv.close()
        for c in accepted:
            c.close()


def test_agent_refuses_a_model_whose_input_would_fill_memory(tmp_path, space):
    """A small file may declare a huge input: bounded by --max-input, refused with 413."""
    small = Agent(tmp_path, "--max-input", "100")  # an 8x8 digit holds 64 values
    try:
        cand = candidate(space)
        fits = onnx_bytes(cand.model, (1, 8, 8), 1)
        big = onnx_bytes(candidate(space, shape=(1, 16, 16)).model, (1, 16, 16), 1)  # 256
        assert small.request("POST", "/measure?runs=5&blocks=1", fits)[0] == 200
        status, body = small.request("POST", "/measure?runs=5&blocks=1", big)
        assert status == 413 and "256 values, over the limit of 100" in body["error"]
        status, body = small.request("POST", "/measure?runs=5&blocks=1&batch=2", fits)
        assert status == 200  # the export's batch dimension is fixed at 1
        assert small.stats()["refused"] == 1
    finally:
        small.stop()


def test_a_board_lost_before_re_timing_keeps_the_first_readings(agent, tmp_path, monkeypatch):
    import hwnas
    from hwnas.hardware.remote import RemoteCostModel

    def gone(self, cand):
        raise HardwareLoopError("agent unreachable")

    monkeypatch.setattr(RemoteCostModel, "remeasure", gone)
    cfg = remote_search_config(agent.url, 2)
    result = hwnas.run_search(cfg, tmp_path / "run")  # finishes, report and all
    assert result.report is not None and result.report.exists()
    assert all("latency_readings_ms" not in t.metrics for t in result.trials)
    assert "first reading kept: agent unreachable" in (tmp_path / "run" / "hwnas.log").read_text()


def test_agent_never_logs_a_query_string(agent):
    """A client that puts its token in the URL must not find it in the agent's log."""
    status, _ = agent.request("GET", "/health?token=hunter2-secret&x=1")
    assert status == 200
    status, _ = agent.request("GET", "/stats?token=hunter2-secret", token="wrong")
    assert status == 401
    deadline = time.monotonic() + 10
    while "/stats" not in agent.err.read_text() and time.monotonic() < deadline:
        time.sleep(0.05)
    log = agent.err.read_text()
    assert "/health?…" in log and "/stats?…" in log
    assert "hunter2" not in log


def test_agent_serves_clients_while_500_idle_sockets_are_open(agent):
    import socket

    idle = []
    try:
        for _ in range(500):
            s = socket.create_connection(("127.0.0.1", agent.port), timeout=10)
            idle.append(s)
        t0 = time.monotonic()
        served = sum(agent.request("GET", "/health")[0] == 200 for _ in range(100))
        assert served == 100
        assert time.monotonic() - t0 < 60
    finally:
        for s in idle:
            s.close()


def _endless_loop_model() -> bytes:
    """An ONNX model whose Loop never ends (its condition stays true, no trip count)."""
    from onnx import TensorProto, helper

    body = helper.make_graph(
        [
            helper.make_node("Identity", ["cond_in"], ["cond_out"]),
            helper.make_node("Add", ["v_in", "one"], ["v_out"]),
        ],
        "body",
        [
            helper.make_tensor_value_info("i", TensorProto.INT64, []),
            helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_in", TensorProto.FLOAT, [1]),
        ],
        [
            helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
            helper.make_tensor_value_info("v_out", TensorProto.FLOAT, [1]),
        ],
        [helper.make_tensor("one", TensorProto.FLOAT, [1], [1.0])],
    )
    g = helper.make_graph(
        [helper.make_node("Loop", ["", "cond", "x"], ["y"], body=body)],
        "endless",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1])],
        [helper.make_tensor("cond", TensorProto.BOOL, [], [True])],
    )
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def test_agent_stops_a_measurement_past_its_time_limit(tmp_path, space):
    """A model whose Loop never ends is stopped after --time-limit; the agent serves on."""
    slow = Agent(tmp_path, "--time-limit", "2")
    try:
        t0 = time.monotonic()
        status, body = slow.request(
            "POST", "/measure?runs=5&blocks=1&warmup=1", _endless_loop_model()
        )
        assert status == 422 and "time limit of 2 s" in body["error"], body
        assert time.monotonic() - t0 < 20
        cand = candidate(space)
        status, body = slow.request("POST", "/measure", onnx_bytes(cand.model, cand.input_shape))
        assert status == 200 and body["latency_ms"] > 0
    finally:
        slow.stop()


def test_a_net_its_counted_sram_rules_out_is_not_sent_to_the_board(tmp_path):
    """A command board beside a datasheet model: a net whose counted SRAM breaks the bound
    is pruned without the board's reading (each can mean flashing a microcontroller); one
    within it is measured as before."""
    calls = tmp_path / "calls"
    board = tmp_path / "board.py"
    board.write_text(
        "import pathlib, sys\n"
        f"p = pathlib.Path({str(calls)!r}); p.write_text(p.read_text() + 'x' if p.exists() else 'x')\n"
        "print('latency: 0.5 ms')\n"
    )
    common = [
        *FAST,
        "estimator.epochs=1",
        "data.subset=0.2",
        f"target={{name: command, command: [{PY}, {board}, '{{model}}'], regex: 'latency: ([0-9.]+) ms'}}",
        "costs=[{name: device, spec: cortex-m7, provides: [peak_sram_bytes]}]",
    ]
    from hwnas.api import run_search

    tight = run_search(
        load_config(None, [*common, "constraints=['peak_sram_bytes <= 500']"], budget=3),
        tmp_path / "tight",
    )
    assert [t.status for t in tight.trials] == ["pruned"] * 3
    assert all(
        "peak_sram_bytes" in t.metrics and "latency_ms" not in t.metrics for t in tight.trials
    )
    assert not calls.exists()  # the board was never asked
    loose = run_search(
        load_config(None, [*common, "constraints=['peak_sram_bytes <= 256KiB']"], budget=2),
        tmp_path / "loose",
    )
    assert [t.status for t in loose.trials] == ["complete"] * 2
    assert all(t.metrics["latency_ms"] == 0.5 for t in loose.trials)
    assert len(calls.read_text()) >= 2  # each trial's reading (and the front's re-timing)


def test_a_command_board_that_stops_answering_stops_the_search_and_resumes(tmp_path):
    """`command` as `remote`: trials failing in a row because the board did not answer
    (exit 255, as ssh says it) stop the search, and the same command re-runs them."""
    from hwnas.api import run_search
    from hwnas.experiment.experiment import MAX_DEVICE_FAILURES

    down = tmp_path / "down"
    board = tmp_path / "board.py"
    board.write_text(
        "import pathlib, sys\n"
        f"if pathlib.Path({str(down)!r}).exists(): sys.exit(255)\n"
        "print('latency: 0.5 ms')\n"
    )
    cfg = [
        *FAST,
        "estimator.epochs=1",
        "data.subset=0.2",
        f"target={{name: command, command: [{PY}, {board}, '{{model}}'], "
        "regex: 'latency: ([0-9.]+) ms', retries: 0, cache: false}",
    ]
    down.touch()
    lost = run_search(load_config(None, cfg, budget=6), tmp_path / "run")
    assert lost.stopped == "device"
    assert [t.status for t in lost.trials] == ["failed"] * MAX_DEVICE_FAILURES
    down.unlink()
    counts: list[int] = []
    again = run_search(
        load_config(None, cfg, budget=6),
        tmp_path / "run",
        on_start=lambda info: counts.append(info["done"]),
        on_trial=lambda t, info: counts.append(info["done"]),
    )
    assert again.stopped == "budget"
    assert [t.status for t in again.trials] == ["complete"] * 6
    # the lost trials count once they have run again: the count never repeats (it said 3, 3)
    assert counts == list(range(7)), counts
    assert [t.seed for t in again.trials[:3]] == [t.seed for t in lost.trials]


def test_profile_runs_an_onnx_file_on_a_command_board(tmp_path):
    """`hwnas profile --onnx` on the board itself (it was refused: only cpu-ort and the
    device model read a file); the command gets the file and its input shape."""
    model = torch.nn.Sequential(torch.nn.Conv2d(3, 4, 3), torch.nn.Flatten()).eval()
    onnx_path = tmp_path / "m.onnx"
    torch.onnx.export(model, (torch.zeros(1, 3, 12, 10),), str(onnx_path), dynamo=False)
    board = tmp_path / "board.py"
    board.write_text(  # "reads" the file and answers with the input's size as the figure
        "import math, os, sys\n"
        "assert os.path.getsize(sys.argv[1]) > 100\n"
        "print('latency: %s ms' % (math.prod(int(d) for d in sys.argv[2].split(',')) / 1000))\n"
    )
    cfg = tmp_path / "board.yaml"
    cfg.write_text(
        "target:\n  name: command\n"
        f"  command: [{PY}, {board}, '{{model}}', '{{input_shape}}']\n"
        "  regex: 'latency: ([0-9.]+) ms'\n"
    )
    res = run_cli("profile", "--onnx", str(onnx_path), "--config", str(cfg), "--json")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["latency_ms"] == pytest.approx(3 * 12 * 10 / 1000)  # batch 1 x 3 x 12 x 10
    assert got["params"] == 3 * 4 * 9 + 4
    board.write_text("import sys; sys.exit('flash failed')\n")
    res = run_cli(
        "profile",
        "--onnx",
        str(onnx_path),
        "--config",
        str(cfg),
        "--set",
        "target.retries=0",
        "--set",
        "target.cache=false",
    )
    assert res.returncode == 2 and "flash failed" in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1


# ------------------------------------------------------------- lookup tables on a board
ONE_BLOCK_SPACE = (
    "space.stages=[{depths: [1], widths: [8], stride: 1}, {depths: [1], widths: [16], stride: 2}]"
)


def _table_meta(path: str) -> dict[str, Any]:
    con = sqlite3.connect(path)
    try:
        (fp,) = con.execute("SELECT value FROM meta WHERE key='fingerprint'").fetchone()
        (entries, readings) = con.execute("SELECT count(*), sum(readings) FROM entries").fetchone()
    finally:
        con.close()
    return {"fingerprint": json.loads(fp), "entries": entries, "readings": readings}


def test_fbnet_times_its_blocks_on_the_remote_board(agent, tmp_path):
    """FBNet's latency table on the board the search targets: every block goes to the agent
    (a `remote` target had no runtime to time blocks on), and the derived net's measured
    latency on the board is what the table predicted."""
    before = agent.stats()["measured"]
    cache = tmp_path / "cache"
    res = run_cli(
        "search",
        "--out",
        str(tmp_path / "fb"),
        "--budget",
        "1",
        "-q",
        *[
            a
            for s in [
                "space=fbnet",
                # nets of ~0.1 ms, not ~0.02: at tens of microseconds the agent's readings on
                # a shared 2-core host scatter by more than the table's composition error
                "space.width_multiplier=1.0",
                "space.head_channels=64",
                "space.stem_stride=1",
                "strategy=fbnet",
                "strategy.cost_metric=latency_ms",
                "strategy.alpha=0",  # accuracy alone: convs, not the skips a cost favours
                "supernet.epochs=1",
                "supernet.search_epochs=1",
                "supernet.mixture=hard",
                "estimator.epochs=1",
                "data.subset=0.3",
                "target=remote",
                f"target.url={agent.url}",
                f"target.token={TOKEN}",
                "target.runs=20",
                "target.blocks=4",
                "target.warmup=3",
            ]
            for a in ("--set", s)
        ],
        env={"HWNAS_CACHE": str(cache)},
    )
    assert res.returncode == 0, res.stderr
    tables = list((cache / "lut").glob("board-*.sqlite"))
    assert len(tables) == 1
    meta = _table_meta(str(tables[0]))
    health = agent.request("GET", "/health")[1]
    fp = meta["fingerprint"]
    assert fp["runtime"] == "board" and fp["board"] == "remote"
    assert fp["device"]["cpu"] == health["cpu"] and fp["protocol"] == [3, 20, 4]
    assert meta["entries"] > 50
    # every reading of the table was the agent's (fresh, past the client's cache), plus the
    # derived net's fix-up readings, its trial's reading and its re-timing
    assert agent.stats()["measured"] - before >= meta["readings"] + 2
    (trial,) = json.loads(run_cli("show", str(tmp_path / "fb"), "--json").stdout)
    assert trial["status"] == "complete"
    predicted, measured = trial["info"]["predicted_cost"], trial["metrics"]["latency_ms"]
    assert abs(predicted / measured - 1) < 0.35, (predicted, measured)


# times the model with ONNX Runtime on this machine and prints the figure in microseconds
ORT_BOARD = (
    "import sys, time, numpy as np, onnxruntime as ort\n"
    "o = ort.SessionOptions(); o.intra_op_num_threads = 1\n"
    "s = ort.InferenceSession(sys.argv[1], o, providers=['CPUExecutionProvider'])\n"
    "i = s.get_inputs()[0]; x = np.zeros([int(d) for d in sys.argv[2].split(',')], np.float32)\n"
    "for _ in range(3): s.run(None, {i.name: x})\n"
    "t = []\n"
    "for _ in range(15):\n"
    "    t0 = time.perf_counter(); s.run(None, {i.name: x}); t.append(time.perf_counter() - t0)\n"
    "print('took %.3f us' % (sorted(t)[7] * 1e6))\n"
)


def test_lut_build_on_a_command_board(tmp_path):
    """`hwnas lut build` with a `command` target: each block is an ONNX file handed to the
    command, whose figure (here in us, scaled to ms) fills the table; a command that measures
    something other than latency cannot fill one."""
    board = tmp_path / "board.py"
    board.write_text(ORT_BOARD)
    cfg = tmp_path / "board.yaml"
    cfg.write_text(
        "data: {name: digits}\n"
        "space:\n  stages: [{depths: [1], widths: [8], stride: 1}, "
        "{depths: [1], widths: [16], stride: 2}]\n"
        "  kernels: [3]\n  expansions: [1, 3]\n"
        "target:\n  name: command\n"
        f"  command: [{PY}, {board}, '{{model}}', '{{input_shape}}']\n"
        "  regex: 'took ([0-9.]+) us'\n  scale: 0.001\n  cache: false\n"
    )
    res = run_cli("lut", "build", "-c", str(cfg), "--dir", str(tmp_path / "t"), "-q")
    assert res.returncode == 0, res.stderr
    m = re.search(r"lookup table (\S+board-\w+\.sqlite): (\d+) entries", res.stdout + res.stderr)
    assert m, res.stdout + res.stderr
    meta = _table_meta(m[1])
    assert meta["fingerprint"]["board"] == "command" and int(m[2]) == meta["entries"] > 5
    assert meta["fingerprint"]["command"][-2:] == ["{model}", "{input_shape}"]
    con = sqlite3.connect(m[1])
    ms = [v for (v,) in con.execute("SELECT ms FROM entries")]
    con.close()
    assert all(0 < v < 50 for v in ms)  # us scaled to ms: a tiny graph runs well under 50 ms
    # four archs, all calibration nets: nothing held out to judge the table by
    res = run_cli("lut", "eval", "-c", str(cfg), "--dir", str(tmp_path / "t"), "--n", "3", "-q")
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "too few to judge it by; lower target.calibration" in res.stderr
    # a figure read in other units is another table, not the same one reused
    scaled = BoardMeter(validate_config({"target": yaml_target(cfg)}).target)
    us = BoardMeter(validate_config({"target": {**yaml_target(cfg), "scale": 1.0}}).target)
    assert scaled.fingerprint()["scale"] == 0.001 and us.fingerprint()["scale"] == 1.0

    cfg.write_text(
        cfg.read_text() + "  metric: energy_mj\nobjectives: {accuracy: max, energy_mj: min}\n"
    )
    res = run_cli("lut", "build", "-c", str(cfg), "--dir", str(tmp_path / "t"), "-q")
    assert res.returncode == 2 and res.stderr.count("\n") == 1
    assert "command (measuring latency_ms)" in res.stderr


def test_lut_eval_judges_a_board_table_by_the_board_s_readings(agent, tmp_path):
    """`hwnas lut eval` on a `remote` target: the table built on the agent, held-out archs
    measured end to end on the agent, compared."""
    cfg = tmp_path / "board.yaml"
    cfg.write_text(
        json.dumps(
            {
                "space": {
                    "stages": [
                        {"depths": [1, 2], "widths": [8, 16], "stride": 1},
                        {"depths": [1, 2], "widths": [16, 24], "stride": 2},
                    ],
                    "kernels": [3, 5],
                    "expansions": [1, 3],
                },
                "target": {
                    "name": "remote",
                    "url": agent.url,
                    "token": TOKEN,
                    **{"runs": 20, "blocks": 4, "warmup": 3},
                },
            }
        )
    )
    before = agent.stats()["measured"]
    res = run_cli("lut", "eval", "-c", str(cfg), "--dir", str(tmp_path / "t"), "--n", "4", "-q")
    assert res.returncode == 0, res.stderr
    report = json.loads(res.stdout[res.stdout.index("{") :])
    assert report["n"] == 4 and 0 <= report["mape"] < 1.0
    # the table's entries and calibration nets, then 4 archs twice (the noise floor's sweep)
    assert agent.stats()["measured"] - before > 8


def yaml_target(path: Path) -> dict[str, Any]:
    import yaml

    target: dict[str, Any] = yaml.safe_load(path.read_text())["target"]
    return target


def test_a_board_that_does_not_answer_is_one_line_before_any_table_or_study(tmp_path):
    """`lut build` on an agent that is not there, and a search whose `lut` target's board
    keeps a study's masked token: one line, exit 2, nothing written."""
    down = {"name": "remote", "url": "http://127.0.0.1:9", "token": TOKEN, "retries": 0}
    cfg = tmp_path / "down.yaml"
    cfg.write_text(json.dumps({"target": down}))
    res = run_cli("lut", "build", "-c", str(cfg), "--dir", str(tmp_path / "t"), "-q")
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "127.0.0.1:9" in res.stderr and "Traceback" not in res.stderr
    masked = {**down, "token": "**********"}
    res = run_cli(
        "search",
        "--out",
        str(tmp_path / "run"),
        "--set",
        f"target={json.dumps({'name': 'lut', 'runtime': 'board', 'board': masked})}",
    )
    assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
    assert "target.board.token: a study keeps the token masked" in res.stderr
    assert "--set target.board.token=" in res.stderr
    assert not (tmp_path / "run").exists()
    # a table among `costs` names its own entry; one derived from `target: remote` the target
    from hwnas.hardware.lut import lut_of, make_lut_meter

    lut = {"name": "lut", "runtime": "board", "board": masked, "label": "b"}
    for cfg_, key in (({"costs": [lut]}, "costs.0.board"), ({"target": masked}, "target")):
        c = validate_config(cfg_)
        with pytest.raises(UserError, match=rf"^{key}\.token: a study keeps the token masked"):
            make_lut_meter(lut_of(c.costs[0] if c.costs else c.target))


def test_a_command_whose_program_is_not_there_is_refused_before_the_study(tmp_path, monkeypatch):
    """A mistyped program in a `command` target, or in a `lut` table's command board: one
    line naming it, exit 2, before a study or table is written (it failed in the first trial,
    or in the table's build after the study was written). Found programs pass: the check does
    not run the command (a run may flash a board)."""
    board = {"name": "command", "command": ["/nonexistent/bench", "{model}"], "regex": "(x)"}
    lut = {"name": "lut", "runtime": "board", "board": board}
    for target, key in ((board, "target.command"), (lut, "target.board.command")):
        out = tmp_path / key
        res = run_cli("search", "--out", str(out), "--set", f"target={json.dumps(target)}")
        assert res.returncode == 2 and res.stderr.count("\n") == 1, res.stderr
        assert f"{key}: cannot start '/nonexistent/bench': not found" in res.stderr
        assert not out.exists()

    def check(*command: str) -> None:
        BoardMeter(validate_config({"target": {**board, "command": command}}).target).check()

    script = tmp_path / "bench.sh"
    script.write_text("#!/bin/sh\necho 1\n")  # there, but not executable
    with pytest.raises(HardwareLoopError, match="bench.sh': not executable"):
        check(str(script), "{model}")
    with pytest.raises(HardwareLoopError, match="is a directory"):
        check(str(tmp_path), "{model}")
    script.chmod(0o755)
    check(str(script), "{model}")
    # a bare name is looked up on PATH alone, not in the current folder (as the run does)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(HardwareLoopError, match=r"not on PATH \(give ./bench.sh"):
        check("bench.sh", "{model}")
    check("./bench.sh", "{model}")
    for ok in (["sh", "{model}"], ["{model}"]):  # on PATH by name; the model file run itself
        check(*ok)


def test_a_lut_board_section_is_checked():
    ok = {"name": "remote", "url": "http://board:1", "token_env": "T"}
    cfg = validate_config({"target": {"name": "lut", "runtime": "board", "board": ok}})
    assert cfg.target.board.url == "http://board:1"
    for target, needle in [
        ({"name": "lut", "runtime": "board"}, "runtime board and a board section go together"),
        ({"name": "lut", "board": ok}, "runtime board and a board section go together"),
        (
            {
                "name": "lut",
                "runtime": "board",
                "board": {
                    "name": "command",
                    "command": ["x", "{model}"],
                    "regex": "(1)",
                    "metric": "energy_mj",
                },
            },
            "a lookup table holds latency; the command measures energy_mj",
        ),
        (
            {"name": "lut", "runtime": "board", "board": {**ok, "batch": 4}},
            "batch 1 and board.batch 4: the table is timed at its board's batch",
        ),
    ]:
        with pytest.raises(ConfigError, match=needle):
            validate_config({"target": target})


def test_a_board_lost_mid_run_exits_1_not_as_bad_input(monkeypatch, capsys):
    """A board that stops answering after the run started (a one-shot fix-up's reading, a
    table's build) is not bad input: exit 1, one line saying to run again once it answers,
    as a search whose trials fail on it stops (it exited 2, as for a config error)."""
    import hwnas.cli as cli
    from hwnas.hardware.remote import DeviceUnreachable

    def lost(args: Any) -> int:
        raise DeviceUnreachable("agent http://127.0.0.1:9 failed 3 time(s); last: refused")

    monkeypatch.setitem(cli.COMMANDS, "search", lost)
    assert cli.main(["search", "--out", "x"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "failed 3 time(s)" in err
    assert "run the same command again once the device answers" in err

    def wrong(args: Any) -> int:
        raise HardwareLoopError("agent http://b:1 refused the token (401)")

    monkeypatch.setitem(cli.COMMANDS, "search", wrong)
    assert cli.main(["search", "--out", "x"]) == 2  # a wrong token stays bad input


def test_the_closing_summary_says_why_trials_failed_not_only_the_error_s_kind(tmp_path):
    """`2 x HardwareLoopError` alone sent the user to `hwnas show --json` for the reason; the
    summary gives the first trial's words after the kind."""
    board = tmp_path / "board.py"
    board.write_text("print('all good, no figure here')\n")
    target = (
        f"target={{name: command, command: [{PY}, {board}, '{{model}}'], "
        "regex: 'latency: ([0-9.]+) ms', retries: 0, cache: false}"
    )
    res = run_cli(
        "search", "--out", str(tmp_path / "run"), "--budget", "2", "-q",
        *[a for s in [*FAST, "estimator.epochs=1", "data.subset=0.2", target] for a in ("--set", s)],
    )  # fmt: skip
    assert res.returncode == 1, res.stderr
    line = next(ln for ln in res.stderr.splitlines() if ln.startswith("  2 x "))
    assert line.startswith("  2 x HardwareLoopError: command "), line
    assert "last: no match for regex 'latency: ([0-9.]+) ms' (last line: all good" in line, line
