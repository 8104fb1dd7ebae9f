"""Every cost a target offers for one model: the engine behind ``hwnas profile``."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from torch import nn

from hwnas.core.errors import UserError, gist
from hwnas.hardware.analytic import analytic_costs
from hwnas.hardware.base import Candidate, select
from hwnas.hardware.onnx_costs import onnx_graph_costs, onnx_params
from hwnas.hardware.profile import Timing
from hwnas.hardware.targets import make_cost_model


def _latency(timing: Timing) -> dict[str, Any]:
    return {
        "latency_ms": timing.latency_ms,
        "latency_spread": timing.spread,
        "latency_block_medians_ms": list(timing.block_medians_ms),
    }


def profile_module(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    target: Any,
    *,
    arch: Any = None,
    space: Any = None,
    costs: Sequence[Any] = (),
) -> dict[str, Any]:
    """Analytic costs, plus measured latency when the target has a runtime, plus whatever a
    registered cost model (device model, table, predictor...) of the target's kind offers;
    then each further source of ``costs`` (a config's ``costs:``) alike, under its label
    (``latency_ms@h200``) where it has one, as a search records them."""
    out: dict[str, Any] = dict(analytic_costs(model, input_shape))
    missed: list[str] = []
    for i, cfg in enumerate([target, *costs]):
        try:
            source = make_cost_model(cfg)
            try:
                meter = getattr(source, "meter", None)
                if meter is not None:  # a runtime here: its block medians too
                    got = _latency(meter.measure(model, input_shape))
                else:
                    cand = Candidate(arch if arch is not None else {}, space, input_shape, model)
                    got = source.costs(cand)
            finally:
                source.close()
        except Exception as exc:  # noqa: BLE001 - a further source absent here (no CUDA on a
            if i == 0:  # laptop) leaves the others' figures standing; the target's own fails
                raise
            missed.append(f"{cfg.name}{f'@{cfg.label}' if cfg.label else ''} ({gist(exc)})")
            continue
        # a runtime's readings whole (spread, block medians), a model's as `provides` says
        out.update(select(got, cfg.provides if meter is None else None, cfg.label))
    if missed:
        out["note"] = "not measured here: " + "; ".join(missed) + " (--target names one source)"
    return out


def _inputs(graph: Any) -> list[Any]:
    """The graph's data inputs (older exporters list the weights among the inputs too)."""
    weights = {t.name for t in graph.initializer}
    return [vi for vi in graph.input if vi.name not in weights and vi.type.HasField("tensor_type")]


def _fix_shape(graph: Any, dims: list[int]) -> None:
    """Give the first input's dimensions past the batch the sizes of ``--input-shape``."""
    inputs = _inputs(graph)
    if not inputs:
        raise UserError("--input-shape: the ONNX file has no input to shape")
    vi = inputs[0]
    have = list(vi.type.tensor_type.shape.dim)[1:]
    if len(have) != len(dims):
        raise UserError(
            f"--input-shape {','.join(map(str, dims))}: input {vi.name} has {len(have)} "
            f"dimension(s) past the batch, not {len(dims)}"
        )
    for i, (d, size) in enumerate(zip(have, dims, strict=True), start=1):
        if d.HasField("dim_value") and d.dim_value != size:
            raise UserError(
                f"--input-shape: input {vi.name}'s dimension {i} is fixed at {d.dim_value}, "
                f"not {size}"
            )
        d.dim_value = size


def _check_sized(graph: Any) -> None:
    """A dynamic dimension past the batch (an image's height) has no size to count or time
    at: refused, where every figure was that of a 1x1 input."""
    for i, vi in enumerate(_inputs(graph)):
        dims = list(vi.type.tensor_type.shape.dim)[1:]
        loose = [d.dim_param or "?" for d in dims if not d.HasField("dim_value")]
        if loose:
            how = (
                "give their sizes with --input-shape (e.g. 3,224,224)"
                if i == 0
                else "export it with fixed sizes (--input-shape sizes the first input only)"
            )
            raise UserError(
                f"--onnx: input {vi.name} has dynamic dimension(s) {', '.join(loose)} past "
                f"the batch; {how}"
            )


def profile_onnx(
    path: str | Path, target: Any, input_shape: list[int] | None = None
) -> dict[str, Any]:
    """Costs of an ONNX file: weights from its initializers, MACs and peak activation memory
    from its inferred shapes, latency in ONNX Runtime; ``input_shape``, the first input's
    dimensions past the batch, sizes those the file left dynamic."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--onnx: {path} does not exist")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
        raise UserError(f"--onnx: {path} is not a readable ONNX model ({gist(exc)})") from None
    source = make_cost_model(target)
    try:
        return _file_costs(path, proto, target, source, input_shape)
    finally:
        source.close()


def _file_costs(
    path: Path, proto: Any, target: Any, source: Any, input_shape: list[int] | None
) -> dict[str, Any]:
    """:func:`profile_onnx` once the file is read and ``source`` made (closed by the caller)."""
    meter = getattr(source, "meter", None)
    device = target.name == "device"  # a datasheet model: the file read as its layers
    board = target.name in ("command", "remote")  # the file itself goes to the board
    if not (hasattr(meter, "measure_onnx") or target.produces() == set() or device or board):
        raise UserError(
            f"--onnx: target {target.name} cannot run an ONNX file; use cpu-ort, "
            "device, command or remote"
        )
    params = onnx_params(proto.graph)
    out: dict[str, Any] = {
        "params": float(params),  # as stored: export folds BatchNorm into the convs
        "model_bytes": float(4 * params),
        "model_bytes_int8": float(params),
    }
    if input_shape is not None:
        _fix_shape(proto.graph, input_shape)
    _check_sized(proto.graph)
    notes: list[str] = []
    try:
        out.update(onnx_graph_costs(proto, notes))
    except Exception as exc:  # noqa: BLE001 - a graph shape inference cannot follow: the
        notes.append(f"no MACs or peak memory: shapes not inferred ({gist(exc)})")  # rest stands
    if notes:
        out["note"] = "; ".join(notes)
    if device:
        from hwnas.hardware.device import estimate_graph
        from hwnas.hardware.devices import load_spec
        from hwnas.hardware.onnx_device import onnx_layers

        try:
            layers = onnx_layers(proto)
        except Exception as exc:  # noqa: BLE001 - a graph the reader cannot follow
            raise UserError(f"--onnx: {path}: not read as device layers ({gist(exc)})") from None
        out.update(estimate_graph(layers, load_spec(target.spec), target.precision).metrics())
    if board:
        out.update(_on_board(source, proto))
    elif meter is not None:
        try:
            timing = meter.measure_onnx(proto.SerializeToString())
        except Exception as exc:  # noqa: BLE001 - an op the runtime lacks, a shape it refuses
            raise UserError(f"--onnx: {path}: ONNX Runtime cannot run it ({gist(exc)})") from None
        out.update(_latency(timing))
    return out


def _on_board(source: Any, proto: Any) -> dict[str, float]:
    """The file's figure from a board (the agent's reading, or the command's metric); a
    failure is the board's one line (HardwareLoopError is a UserError)."""
    from hwnas.hardware.remote import board_figures

    inputs = _inputs(proto.graph)  # a command is told the first one's C,H,W; an agent reads it
    shape = list(inputs[0].type.tensor_type.shape.dim)[1:] if inputs else []
    return board_figures(source, proto.SerializeToString(), tuple(d.dim_value for d in shape))
