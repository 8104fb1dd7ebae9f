"""Every cost a target offers for one model: the engine behind ``hwnas profile``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from hwnas.core.errors import UserError, gist
from hwnas.hardware.analytic import analytic_costs
from hwnas.hardware.base import Candidate, select
from hwnas.hardware.onnx_costs import onnx_graph_costs
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
) -> dict[str, Any]:
    """Analytic costs, plus measured latency when the target has a runtime, plus whatever a
    registered cost model (device model, table, predictor...) of the target's kind offers."""
    out: dict[str, Any] = dict(analytic_costs(model, input_shape))
    source = make_cost_model(target)
    try:
        meter = getattr(source, "meter", None)
        if meter is not None:  # a runtime here: its block medians too
            out.update(_latency(meter.measure(model, input_shape)))
        else:
            cand = Candidate(arch if arch is not None else {}, space, input_shape, model)
            out.update(select(source.costs(cand), target.provides))
    finally:
        source.close()
    return out


def profile_onnx(path: str | Path, target: Any) -> dict[str, Any]:
    """Costs of an ONNX file: weights from its initializers, MACs and peak activation memory
    from its inferred shapes, latency in ONNX Runtime."""
    import onnx

    path = Path(path)
    if not path.is_file():
        raise UserError(f"--onnx: {path} does not exist")
    try:
        proto = onnx.load(str(path))
    except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
        raise UserError(f"--onnx: {path} is not a readable ONNX model ({gist(exc)})") from None
    source = make_cost_model(target)
    meter = getattr(source, "meter", None)
    source.close()
    if not (hasattr(meter, "measure_onnx") or target.produces() == set()):
        raise UserError(f"--onnx: target {target.name} cannot run an ONNX file; use cpu-ort")
    params = sum(int(np.prod(t.dims)) for t in proto.graph.initializer)
    out: dict[str, Any] = {
        "params": float(params),  # as stored: export folds BatchNorm into the convs
        "model_bytes": float(4 * params),
        "model_bytes_int8": float(params),
    }
    try:
        out.update(onnx_graph_costs(proto))
    except Exception as exc:  # noqa: BLE001 - a graph shape inference cannot follow: the
        out["note"] = f"no MACs or peak memory: shapes not inferred ({gist(exc)})"  # rest stands
    if meter is not None:
        out.update(_latency(meter.measure_onnx(path.read_bytes())))
    return out
