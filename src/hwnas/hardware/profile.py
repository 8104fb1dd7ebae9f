"""Measured latency on a real runtime: ONNX Runtime (CPU), eager PyTorch (CPU, CUDA).

The host is shared and noisy: a single reading can be 10-80 % slow, and the noise only ever
adds time. So each measurement is split into several timed blocks after a warm-up; the latency
is the *lowest block median*. A burst of load spoils some blocks but not all of them, and a
median inside a block ignores single hiccups. The relative inter-quartile range of all timed
runs is kept as ``spread`` so a reader can judge each figure.
"""

from __future__ import annotations

import io
import itertools
import math
import statistics
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from hwnas.core.threads import torch_threads_kept

if TYPE_CHECKING:  # torch is imported where used: the device agent times ONNX without it
    import torch
    from torch import nn


@dataclass(frozen=True)
class Timing:
    latency_ms: float
    spread: float  # relative IQR of all timed runs
    block_medians_ms: tuple[float, ...]
    runs: int


def summarise(samples_ms: list[float], blocks: int) -> Timing:
    """Lowest block median + relative IQR: robust to load that only slows some blocks."""
    per = max(1, len(samples_ms) // blocks)
    medians = [statistics.median(samples_ms[i * per : (i + 1) * per]) for i in range(blocks)]
    q1, med, q3 = np.percentile(samples_ms, [25, 50, 75])
    return Timing(
        latency_ms=float(min(medians)),
        spread=float((q3 - q1) / med) if med > 0 else 0.0,
        block_medians_ms=tuple(float(m) for m in medians),
        runs=len(samples_ms),
    )


def time_callable(fn: Callable[[], object], warmup: int, runs: int, blocks: int) -> Timing:
    for _ in range(warmup):
        fn()
    samples = []
    clock = time.perf_counter_ns
    for _ in range(runs):
        t0 = clock()
        fn()
        samples.append((clock() - t0) / 1e6)
    return summarise(samples, blocks)


def onnx_bytes(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    batch: int = 1,
    dynamic_batch: bool = False,
) -> bytes:
    """Single-file ONNX of ``model`` (eval mode) for a fixed batch-``batch`` input, or with
    ``dynamic_batch`` a batch dimension the runtime sizes per call (``batch``).

    The TorchScript-based exporter is tried first: it takes ~40 ms for a small net where the
    dynamo exporter takes ~1 s, which matters when every candidate is exported. The dynamo
    exporter (needs onnxscript) is the fallback where the former is gone or fails.
    """
    import torch

    model = model.eval()
    # on the model's own device: a file is device-free, and a meter that ran before this one
    # (cuda-torch) may have left the candidate where it timed it
    x = torch.zeros(batch, *input_shape, device=_device(model))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            buf = io.BytesIO()
            torch.onnx.export(
                model,
                (x,),
                buf,  # type: ignore[arg-type]  # file objects are accepted
                dynamo=False,
                input_names=["input"],
                output_names=["logits"],
                opset_version=17,
                dynamic_axes={"input": {0: "batch"}, "logits": {0: "batch"}}
                if dynamic_batch
                else None,
            )
            return buf.getvalue()
        except Exception:  # noqa: BLE001 - any exporter failure falls back to dynamo
            dims = ({0: torch.export.Dim("batch")},) if dynamic_batch else None
            program = torch.onnx.export(
                model,
                (x,),
                dynamo=True,
                input_names=["input"],
                output_names=["logits"],
                dynamic_shapes=dims,
            )
            assert program is not None
            return bytes(program.model_proto.SerializeToString())


def _device(model: nn.Module) -> torch.device:
    import torch

    t = next(itertools.chain(model.parameters(), model.buffers()), None)
    return t.device if t is not None else torch.device("cpu")


@contextmanager
def _visiting(model: nn.Module, dev: torch.device) -> Iterator[None]:
    """``model`` on ``dev`` in eval mode for the block, then back on the device it came from:
    the next cost source (ONNX Runtime after cuda-torch) finds it where the search left it."""
    home = _device(model)
    model.to(dev).eval()
    try:
        yield
    finally:
        model.to(home)


def export_onnx(
    model: nn.Module,
    input_shape: tuple[int, int, int],
    path: str | Path,
    dynamic_batch: bool = False,
) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(onnx_bytes(model, input_shape, dynamic_batch=dynamic_batch))
    return path


def ort_session(model_bytes: bytes, threads: int = 1):  # type: ignore[no-untyped-def]
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = threads
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


class LatencyMeter(ABC):
    """Times a module on one runtime. Weights don't matter, so untrained nets are timed."""

    def __init__(self, warmup: int = 10, runs: int = 60, blocks: int = 6, batch: int = 1) -> None:
        self.warmup, self.runs, self.blocks, self.batch = warmup, runs, blocks, batch

    @abstractmethod
    def measure(self, model: nn.Module, input_shape: tuple[int, int, int]) -> Timing: ...


class MeasureTimeout(RuntimeError):
    """A measurement ran past its time limit and was stopped."""


class InputTooLarge(ValueError):
    """A model's input tensor is larger than the measuring side accepts."""


class OrtCpuMeter(LatencyMeter):
    """Export to ONNX, run in ONNX Runtime on the host CPU with ``threads`` intra-op threads."""

    def __init__(self, threads: int = 1, **kw: int) -> None:
        super().__init__(**kw)
        self.threads = threads

    def measure(self, model: nn.Module, input_shape: tuple[int, int, int]) -> Timing:
        return self.measure_onnx(onnx_bytes(model, input_shape, self.batch))

    def measure_onnx(
        self,
        model_bytes: bytes,
        max_input_values: int | None = None,
        time_limit: float | None = None,
    ) -> Timing:
        """Time a serialized ONNX model; dynamic dimensions of its input become ``batch``.

        ``max_input_values`` refuses (:class:`InputTooLarge`) a model whose input tensor would
        hold more values: a small file may declare an input that fills the host's memory.
        ``time_limit`` (seconds, the whole measurement) stops a model that runs too long (an
        endless ``Loop``) through ONNX Runtime's terminate flag: :class:`MeasureTimeout`.
        """
        import onnxruntime as ort

        sess = ort_session(model_bytes, self.threads)
        # I/O binding: the inputs stay put, so what is timed is the runtime executing the
        # graph, not Python converting arrays (~5 us a call, half of a tiny model's time)
        binding = sess.io_binding()
        for name, shape, dtype in ort_inputs(sess, self.batch):  # every input, in its type
            values = math.prod(shape)
            if max_input_values is not None and values > max_input_values:
                raise InputTooLarge(
                    f"input {name} of shape {shape} holds {values} values, over the limit "
                    f"of {max_input_values}"
                )
            binding.bind_cpu_input(name, np.zeros(shape, dtype))
        for out in sess.get_outputs():
            binding.bind_output(out.name)
        options = ort.RunOptions()
        options.log_severity_level = 4  # a failed run raises, with the runtime's message
        # said outright: ONNX Runtime's Python wrapper (1.32) looks this entry up on every run
        # with options, and a missing one raises and catches an error inside, ~40-90 us a run
        # that every reading carried (0 is the default it then assumes; ignored on the CPU)
        options.add_run_config_entry("gpu_graph_id", "0")
        timer = None
        if time_limit is not None:
            timer = threading.Timer(time_limit, lambda: setattr(options, "terminate", True))
            timer.daemon = True
            timer.start()
        try:
            return time_callable(
                lambda: sess.run_with_iobinding(binding, options),
                self.warmup,
                self.runs,
                self.blocks,
            )
        except Exception:
            if options.terminate:
                raise MeasureTimeout(
                    f"the measurement ran past its time limit of {time_limit:g} s and was "
                    "stopped (a model that never ends, or far too slow for this host)"
                ) from None
            raise
        finally:
            if timer is not None:
                timer.cancel()


#: numpy's type of each ONNX Runtime input type (a float32 input where it is not listed)
_ORT_DTYPES = {
    f"tensor({ort})": np.dtype(dtype)
    for ort, dtype in [
        ("float", "f4"), ("double", "f8"), ("float16", "f2"), ("bool", "?"),
        ("int8", "i1"), ("int16", "i2"), ("int32", "i4"), ("int64", "i8"),
        ("uint8", "u1"), ("uint16", "u2"), ("uint32", "u4"), ("uint64", "u8"),
    ]
}  # fmt: skip


def ort_inputs(sess: Any, batch: int) -> list[tuple[str, list[int], np.dtype[Any]]]:
    """Name, shape (a dynamic dimension as ``batch``) and numpy type of each input of an
    ONNX Runtime session: a uint8 image or integer ids are fed as such, not as float32."""
    return [
        (
            i.name,
            [d if isinstance(d, int) else batch for d in i.shape],
            _ORT_DTYPES.get(i.type, np.dtype("f4")),
        )
        for i in sess.get_inputs()
    ]


class TorchCpuMeter(LatencyMeter):
    """Eager PyTorch on the CPU with ``threads`` intra-op threads."""

    def __init__(self, threads: int = 1, **kw: int) -> None:
        super().__init__(**kw)
        self.threads = threads

    def measure(self, model: nn.Module, input_shape: tuple[int, int, int]) -> Timing:
        import torch

        x = torch.zeros(self.batch, *input_shape)
        with (
            torch_threads_kept(self.threads),
            _visiting(model, torch.device("cpu")),
            torch.inference_mode(),
        ):
            return time_callable(lambda: model(x), self.warmup, self.runs, self.blocks)


class TorchCudaMeter(LatencyMeter):
    """Eager PyTorch on CUDA, each run timed by CUDA events; optionally as a CUDA graph."""

    def __init__(self, cuda_graphs: bool = False, **kw: int) -> None:
        super().__init__(**kw)
        self.cuda_graphs = cuda_graphs

    def measure(self, model: nn.Module, input_shape: tuple[int, int, int]) -> Timing:
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError("target cuda-torch: no CUDA device available")
        dev = torch.device("cuda")
        x = torch.zeros(self.batch, *input_shape, device=dev)
        with _visiting(model, dev), torch.inference_mode():
            step: Callable[[], object] = lambda: model(x)  # noqa: E731
            if self.cuda_graphs:
                stream = torch.cuda.Stream()
                stream.wait_stream(torch.cuda.current_stream())
                with torch.cuda.stream(stream):
                    for _ in range(3):
                        model(x)
                torch.cuda.current_stream().wait_stream(stream)
                graph = torch.cuda.CUDAGraph()
                with torch.cuda.graph(graph):
                    model(x)
                step = graph.replay
            for _ in range(self.warmup):
                step()
            torch.cuda.synchronize()
            starts = [torch.cuda.Event(enable_timing=True) for _ in range(self.runs)]
            ends = [torch.cuda.Event(enable_timing=True) for _ in range(self.runs)]
            for s, e in zip(starts, ends, strict=True):
                s.record()
                step()
                e.record()
            torch.cuda.synchronize()
        samples = [s.elapsed_time(e) for s, e in zip(starts, ends, strict=True)]
        return summarise(samples, self.blocks)
