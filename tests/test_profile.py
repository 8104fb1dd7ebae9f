"""`hwnas profile`: every cost of one model, from an arch, an ONNX file or a study's trial."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import run_cli

from hwnas.hardware.profile import (
    OrtCpuMeter,
    TorchCpuMeter,
    TorchCudaMeter,
    export_onnx,
)
from hwnas.space.chain import ChainSpace

ARCH = {
    "stages": [
        {"depth": 1, "width": 8, "ops": ["k3_e1", "k3_e1"]},
        {"depth": 1, "width": 16, "ops": ["k3_e6", "k3_e1", "k3_e1"]},
        {"depth": 1, "width": 16, "ops": ["k3_e1", "k3_e1", "k3_e1"]},
    ]
}


def test_profile_arch_json_and_table():
    res = run_cli("profile", "--arch", json.dumps(ARCH), "--json")
    assert res.returncode == 0, res.stderr
    costs = json.loads(res.stdout)
    model = ChainSpace().build(ARCH, (1, 8, 8), 10)
    assert costs["params"] == sum(p.numel() for p in model.parameters())
    assert costs["macs"] > 0 and costs["peak_memory_bytes"] > 0
    assert 0 < costs["latency_ms"] < 5 and len(costs["latency_block_medians_ms"]) == 6
    res = run_cli("profile", "--arch", json.dumps(ARCH), "--target", "analytic")
    assert res.returncode == 0 and "macs" in res.stdout and "latency_ms" not in res.stdout


def test_profile_measures_on_every_source_of_the_config():
    """A config timing on two runtimes (`costs:` with a label, as configs/cifar10_fast.yaml)
    gave the target's latency alone; `--target` still names one source."""
    t = "costs=[{name: cpu-torch, label: t, threads: 1, runs: 20, blocks: 4, warmup: 3}]"
    res = run_cli("profile", "--arch", json.dumps(ARCH), "--set", t, "--json")
    assert res.returncode == 0, res.stderr
    costs = json.loads(res.stdout)
    assert 0 < costs["latency_ms"] < 5 and 0 < costs["latency_ms@t"] < 50
    assert len(costs["latency_block_medians_ms@t"]) == 4
    # what each reading was taken with: a latency is comparable only at the same settings
    assert costs["measured_on"]["sources"] == [
        {"target": "cpu-ort", "batch": 1, "threads": 1},
        {"target": "cpu-torch@t", "batch": 1, "threads": 1},
    ]
    assert costs["measured_on"]["input_shape"] == [1, 8, 8]
    res = run_cli("profile", "--arch", json.dumps(ARCH), "--set", t, "--set", "target.batch=4")
    assert res.returncode == 0, res.stderr
    title = " ".join(res.stdout.split())  # rich wraps a long title
    assert "on cpu-ort (batch 4, threads 1), cpu-torch@t (batch 1, threads 1)" in title
    res = run_cli("profile", "--arch", json.dumps(ARCH), "--set", t, "--target", "analytic")
    assert res.returncode == 0 and "latency_ms" not in res.stdout
    if not torch.cuda.is_available():  # a GPU source a laptop lacks: the others still stand
        gpu = "costs=[{name: cuda-torch, label: g}]"
        res = run_cli("profile", "--arch", json.dumps(ARCH), "--set", gpu, "--json")
        assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
        costs = json.loads(res.stdout)
        assert costs["latency_ms"] > 0 and "latency_ms@g" not in costs
        assert (
            costs["note"].startswith("not measured here: cuda-torch@g (")
            and "CUDA" in costs["note"]
        )


def test_profile_onnx_file(tmp_path):
    model = ChainSpace().build(ARCH, (1, 8, 8), 10).eval()
    path = export_onnx(model, (1, 8, 8), tmp_path / "m.onnx")
    res = run_cli("profile", "--onnx", str(path), "--json")
    assert res.returncode == 0, res.stderr
    costs = json.loads(res.stdout)
    # BatchNorm is folded into the convolutions on export, so the file holds fewer weights
    assert 0 < costs["params"] <= sum(p.numel() for p in model.parameters())
    assert costs["latency_ms"] > 0
    # MACs read from the graph's shapes are the analytic counter's on the module itself;
    # the peak of live tensors lies between the input and the sum of every tensor
    from hwnas.hardware.analytic import analytic_costs

    mine = analytic_costs(model, (1, 8, 8))
    assert costs["macs"] == mine["macs"] > 0
    assert 4 * 8 * 8 < costs["peak_memory_bytes"] <= 2 * mine["peak_memory_bytes"]


def test_profile_bad_input():
    for args, needle in (
        (["--arch", "{bad"], "--arch: not valid JSON"),
        (["--arch", json.dumps({"stages": []})], "chain arch needs"),
        (["--onnx", "/no/such.onnx"], "/no/such.onnx does not exist"),
        (["--arch", json.dumps(ARCH), "--target", "gpu9000"], "target"),
    ):
        res = run_cli("profile", *args)
        assert res.returncode == 2 and needle in res.stderr and "Traceback" not in res.stderr, (
            res.stderr
        )


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_meters_leave_the_model_where_they_found_it():
    """A cuda-torch target before a cpu-ort cost (configs/cifar10_fast_gpu.yaml's order):
    every ONNX export failed with a model the CUDA meter had left on the GPU."""
    model = ChainSpace().build(ARCH, (1, 8, 8), 10)
    TorchCudaMeter(runs=4, blocks=2, warmup=1).measure(model, (1, 8, 8))
    assert next(model.parameters()).device.type == "cpu"
    assert OrtCpuMeter(runs=4, blocks=2, warmup=1).measure(model.cuda(), (1, 8, 8)).latency_ms > 0
    TorchCpuMeter(runs=4, blocks=2, warmup=1).measure(model, (1, 8, 8))
    assert next(model.parameters()).device.type == "cuda"


def test_onnx_macs_match_the_analytic_count_on_grouped_and_transposed_convs(tmp_path):
    import onnx
    from torch import nn

    from hwnas.hardware.analytic import analytic_costs
    from hwnas.hardware.onnx_costs import onnx_graph_costs

    m = nn.Sequential(
        nn.Conv2d(1, 4, 3),
        nn.Conv2d(4, 4, 3, padding=1, groups=4),  # depthwise
        nn.ConvTranspose2d(4, 6, 3, stride=2, groups=2),
        nn.Flatten(),
        nn.Linear(6 * 13 * 13, 10),
    ).eval()
    path = export_onnx(m, (1, 8, 8), tmp_path / "m.onnx")
    costs = onnx_graph_costs(onnx.load(str(path)))
    assert costs["macs"] == analytic_costs(m, (1, 8, 8))["macs"] > 0
    # the graph as written: the transposed conv's 6x13x13 float32 output beside its flattened
    # copy (a Reshape is a tensor of its own here; a runtime may share the buffer)
    assert costs["peak_memory_bytes"] == 4 * 2 * 6 * 13 * 13


def _calibration(path: str):  # type: ignore[no-untyped-def]
    """Four random batches for ONNX Runtime's static quantiser, fed to ``path``'s input."""
    import numpy as np
    import onnx
    from onnxruntime.quantization import CalibrationDataReader

    name = onnx.load(path).graph.input[0].name

    class Batches(CalibrationDataReader):
        def __init__(self) -> None:
            rng = np.random.default_rng(0)
            self.it = iter([{name: rng.random((1, 1, 8, 8), np.float32)} for _ in range(4)])

        def get_next(self):  # type: ignore[no-untyped-def]
            return next(self.it, None)

    return Batches()


def _small_cnn():
    from torch import nn

    return nn.Sequential(
        nn.Conv2d(1, 4, 3), nn.ReLU(), nn.Conv2d(4, 4, 3, padding=1, groups=4),
        nn.Flatten(), nn.Linear(4 * 6 * 6, 10),
    ).eval()  # fmt: skip


def test_a_quantised_onnx_file_counts_the_macs_and_weights_of_its_float_twin(tmp_path):
    """ONNX Runtime's own quantisers (QOperator: QLinearConv and the contrib QGemm; QDQ;
    dynamic: ConvInteger, MatMulInteger): the same MACs and weights as the float file (they
    counted no MACs, and scales and zero points as weights), and a QDQ graph's dequantised
    weights are no activations (its peak was 6 times the float graph's), nor its float
    activations between dequantise and quantise (fused into int8 kernels)."""
    import onnx
    from onnxruntime.quantization import (
        QuantFormat,
        quantize_dynamic,
        quantize_static,
    )

    from hwnas.hardware.onnx_costs import onnx_graph_costs, onnx_params

    path = export_onnx(_small_cnn(), (1, 8, 8), tmp_path / "f.onnx")
    chain = export_onnx(
        ChainSpace().build(ARCH, (1, 8, 8), 10).eval(), (1, 8, 8), tmp_path / "c.onnx"
    )

    files = {"float": path}
    for fmt in ("QOperator", "QDQ"):
        files[fmt] = tmp_path / f"{fmt}.onnx"
        quantize_static(
            path, files[fmt], _calibration(str(path)), quant_format=getattr(QuantFormat, fmt)
        )
    files["dynamic"] = tmp_path / "dyn.onnx"
    quantize_dynamic(path, files["dynamic"], op_types_to_quantize=["Conv", "MatMul", "Gemm"])
    graphs = {k: onnx.load(str(p)) for k, p in files.items()}
    ops = {n.op_type for n in graphs["QOperator"].graph.node}
    assert {"QLinearConv", "QGemm"} <= ops and "Conv" not in ops
    assert {"ConvInteger", "MatMulInteger"} <= {n.op_type for n in graphs["dynamic"].graph.node}
    costs = {k: onnx_graph_costs(g) for k, g in graphs.items()}
    assert costs["float"]["macs"] == 4 * 6 * 6 * 9 * 2 + 144 * 10 == 4032
    assert all(c["macs"] == 4032 for c in costs.values()), costs
    params = {k: onnx_params(g.graph) for k, g in graphs.items()}
    assert params["QOperator"] == params["QDQ"] == params["float"] == 1530
    # a QDQ graph's float ops between dequantise and quantise run as int8 kernels: the same
    # peak as its QOperator twin (it read the float graph's, 4x), a quarter of the float's
    peaks = {k: c["peak_memory_bytes"] for k, c in costs.items()}
    assert peaks["QDQ"] == peaks["QOperator"] < peaks["float"], peaks
    # past the contrib ops ONNX infers no shape for (QLinearAdd of a residual, a pooled
    # head), the shapes come from one run: the convolutions after them were counted as 0
    from onnxruntime.quantization.shape_inference import quant_pre_process

    quant_pre_process(str(chain), str(tmp_path / "cp.onnx"))  # the export's shared weights
    qop = QuantFormat.QOperator
    quantize_static(
        tmp_path / "cp.onnx", tmp_path / "cq.onnx", _calibration(str(path)), quant_format=qop
    )
    cq = onnx.load(str(tmp_path / "cq.onnx"))
    assert {"QLinearAdd", "QLinearGlobalAveragePool"} <= {n.op_type for n in cq.graph.node}
    assert onnx_graph_costs(cq)["macs"] == onnx_graph_costs(onnx.load(str(chain)))["macs"] > 0
    res = run_cli("profile", "--onnx", str(files["QOperator"]), "--json")
    assert res.returncode == 0, res.stderr
    got = json.loads(res.stdout)
    assert got["macs"] == 4032 and got["params"] == 1530 and got["latency_ms"] > 0


def test_a_qdq_file_holds_the_peak_of_its_qoperator_twin_where_ops_stay_float(tmp_path):
    """Only an op whose inputs are all dequantised and whose output is quantised alone runs
    as an int8 kernel: a conv left out of quantisation keeps its float tensors, so a QDQ file
    reads its QOperator twin's peak (never a fused conv's where the runtime runs it float)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, quantize_static
    from torch import nn

    from hwnas.hardware.onnx_costs import onnx_graph_costs

    net = nn.Sequential(*(nn.Conv2d(c, 16, 3, padding=1) for c in (1, 16, 16))).eval()
    path = str(export_onnx(net, (1, 8, 8), tmp_path / "f.onnx"))
    names = [n.name for n in onnx.load(path).graph.node]
    peak = {"float": onnx_graph_costs(onnx.load(path))["peak_memory_bytes"]}
    for left in ("none", "first", "middle", "last"):
        out = {"none": [], "first": names[:1], "middle": names[1:2], "last": names[-1:]}[left]
        for fmt in ("QOperator", "QDQ"):
            q = tmp_path / f"{left}-{fmt}.onnx"
            quantize_static(
                path,
                q,
                _calibration(path),
                quant_format=getattr(QuantFormat, fmt),
                nodes_to_exclude=out,
            )
            peak[f"{left}-{fmt}"] = onnx_graph_costs(onnx.load(str(q)))["peak_memory_bytes"]
        assert peak[f"{left}-QDQ"] == peak[f"{left}-QOperator"], (left, peak)
    # two 16-channel 8x8 maps live at once: 8 KiB in float; quantised, the last conv's int8
    # input (1 KiB) beside the float output the file hands out (4 KiB)
    assert peak["float"] == 8192 and peak["none-QDQ"] == 1024 + 4096
    # a float conv between two int8 ones, or last, holds its float maps
    assert peak["middle-QDQ"] == peak["last-QDQ"] == 8192


def test_profile_onnx_inputs_of_any_type_dynamic_sizes_and_files_the_runtime_refuses(tmp_path):
    """Every input is fed, in its own type (a uint8 image ended in a traceback); a file
    exported with a dynamic height and width is sized by --input-shape (its costs were those
    of a 1x1 input, and the runtime refused it with a traceback); a file the runtime cannot
    run is one line, exit 2."""
    import numpy as np
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    from hwnas.hardware.analytic import analytic_costs

    def save(nodes, inputs, name, inits=()):  # type: ignore[no-untyped-def]
        out = helper.make_tensor_value_info("y", TensorProto.FLOAT, None)
        graph = helper.make_graph(nodes, "g", inputs, [out], list(inits))
        onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), name)
        return str(name)

    image = helper.make_tensor_value_info("img", TensorProto.UINT8, [1, 3, 4, 4])
    scale = helper.make_tensor_value_info("scale", TensorProto.FLOAT, [1])
    two = save(
        [helper.make_node("Cast", ["img"], ["f"], to=TensorProto.FLOAT),
         helper.make_node("Mul", ["f", "scale"], ["y"])],
        [image, scale], tmp_path / "two.onnx",
    )  # fmt: skip
    res = run_cli("profile", "--onnx", two, "--json")
    assert res.returncode == 0, res.stderr
    assert json.loads(res.stdout)["latency_ms"] > 0

    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 4, 4])
    shape = numpy_helper.from_array(np.array([5, 7], np.int64), "s")
    bad = [
        (save([helper.make_node("Reshape", ["x", "s"], ["y"])], [x], tmp_path / "r.onnx", [shape]),
         "running Reshape node"),
        (save([helper.make_node("NoSuchOp", ["x"], ["y"])], [x], tmp_path / "op.onnx"), "NoSuchOp"),
    ]  # fmt: skip
    for path, needle in bad:
        res = run_cli("profile", "--onnx", path)
        assert res.returncode == 2 and res.stdout == "", res.stdout
        (line,) = res.stderr.splitlines()  # the runtime's own log line is silenced too
        assert "ONNX Runtime cannot run it" in line and needle in line, line

    from torch import nn

    model = nn.Sequential(
        nn.Conv2d(3, 4, 3), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 10)
    ).eval()  # fmt: skip
    dyn = tmp_path / "dyn.onnx"
    torch.onnx.export(
        model, (torch.zeros(1, 3, 16, 16),), str(dyn), input_names=["x"],
        dynamic_axes={"x": {0: "n", 2: "h", 3: "w"}}, dynamo=False,
    )  # fmt: skip
    res = run_cli("profile", "--onnx", str(dyn))
    assert res.returncode == 2 and "--input-shape" in res.stderr and "h, w" in res.stderr
    for size in ((3, 16, 16), (3, 20, 24)):
        res = run_cli("profile", "--onnx", str(dyn), "--input-shape", ",".join(map(str, size)))
        assert res.returncode == 0, res.stderr
        res = run_cli(
            "profile", "--onnx", str(dyn), "--input-shape", "x".join(map(str, size)), "--json"
        )
        got = json.loads(res.stdout)
        assert got["macs"] == analytic_costs(model, size)["macs"] > 0 and "note" not in got
    for arg, needle in (
        ("4,16,16", "dimension 1 is fixed at 3, not 4"),
        ("3,16", "3 dimension(s) past the batch, not 2"),
        ("a", "give positive sizes"),
    ):
        res = run_cli("profile", "--onnx", str(dyn), "--input-shape", arg)
        assert res.returncode == 2 and needle in res.stderr, res.stderr
    # an arch at another input than the data's; a reference net named alone at its own
    # CIFAR-10 input (the default config's 8x8 digits could not feed it: it was refused)
    macs = {}
    for shape in ("1,8,8", "1,16,16"):
        res = run_cli("profile", "--arch", json.dumps(ARCH), "--input-shape", shape, "--json")
        assert res.returncode == 0, res.stderr
        got = json.loads(res.stdout)
        assert got["measured_on"]["input_shape"] == [int(d) for d in shape.split(",")]
        macs[shape] = got["macs"]
    assert macs["1,16,16"] > 3 * macs["1,8,8"]
    res = run_cli("profile", "--arch", "airbench94", "--target", "analytic")
    assert res.returncode == 0 and "at 3x32x32 on" in " ".join(res.stdout.split()), res.stderr
    assert "118,147,360" in res.stdout  # airbench94's published 118 M MACs
    for args, needle in (
        (["--arch", "airbench94", "--input-shape", "3,32"], "an arch takes C,H,W"),
        (["--dir", str(tmp_path), "--trial", "0", "--input-shape", "3,8,8"], "goes with --onnx"),
        # a config beside a trial was ignored (the study's own target read it)
        (["--dir", str(tmp_path), "--trial", "0", "--config", "b.yaml"], "--target T"),
    ):
        res = run_cli("profile", *args)
        assert res.returncode == 2 and needle in res.stderr, res.stderr


def test_peak_memory_keeps_a_tensor_an_if_branch_reads_alive_until_the_if():
    """A tensor read only inside an If's branch lives until the If runs (it was freed after
    its producer, so the peak missed it)."""
    import onnx
    from onnx import TensorProto, helper

    from hwnas.hardware.onnx_costs import onnx_graph_costs

    def vi(name, n):  # type: ignore[no-untyped-def]
        return helper.make_tensor_value_info(name, TensorProto.FLOAT, [n])

    branch = helper.make_graph(
        [helper.make_node("Identity", ["big"], ["out"])], "b", [], [vi("out", 1000)]
    )
    nodes = [
        helper.make_node("Relu", ["x"], ["big"]),  # 1000 floats, read only in the branch
        helper.make_node("Tile", ["x", "reps"], ["wide"]),  # 2000 floats while big lives
        helper.make_node("ReduceSum", ["wide"], ["cond_f"], keepdims=0),
        helper.make_node("Cast", ["cond_f"], ["cond"], to=TensorProto.BOOL),
        helper.make_node("If", ["cond"], ["y"], then_branch=branch, else_branch=branch),
    ]
    reps = helper.make_tensor("reps", TensorProto.INT64, [1], [2])
    graph = helper.make_graph(nodes, "g", [vi("x", 1000)], [vi("y", 1000)], [reps])
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    onnx.checker.check_model(proto)
    # x (read by Tile) + big + wide, all live when Tile has run
    assert onnx_graph_costs(proto)["peak_memory_bytes"] == 4 * (1000 + 1000 + 2000)


def test_a_flatten_of_a_dynamic_batch_counts_the_product_after_it(tmp_path):
    """`y.view(y.size(0), -1)` of a dynamic batch leaves the flattened size symbolic to ONNX
    (it was taken as 1: the Linear after it counted 10 MACs, not 2 880); one run gives it."""
    import onnx
    from torch import nn

    from hwnas.hardware.analytic import analytic_costs
    from hwnas.hardware.onnx_costs import onnx_graph_costs

    class Flat(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = nn.Conv2d(1, 8, 3), nn.Linear(8 * 6 * 6, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            y = self.conv(x)
            return self.fc(y.view(y.size(0), -1))

    model = Flat().eval()
    path = tmp_path / "flat.onnx"
    torch.onnx.export(
        model, (torch.zeros(1, 1, 8, 8),), str(path), input_names=["x"],
        dynamic_axes={"x": {0: "n"}}, dynamo=False,
    )  # fmt: skip
    notes: list[str] = []
    costs = onnx_graph_costs(onnx.load(str(path)), notes)
    assert costs["macs"] == analytic_costs(model, (1, 8, 8))["macs"] == 8 * 36 * 9 + 288 * 10
    assert notes == []


def test_profile_onnx_on_the_device_model_reads_the_file_as_the_tracer_reads_the_module(tmp_path):
    """`--target device` on an ONNX file (refused before): its layers are the ones the
    device model traces from the PyTorch module the file came from, so SRAM, flash, latency
    and energy agree exactly; the file quantised by ONNX Runtime (QOperator) gives the same."""
    from onnxruntime.quantization import QuantFormat, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from hwnas.hardware.device import estimate

    model = ChainSpace().build(ARCH, (1, 8, 8), 10).eval()
    path = export_onnx(model, (1, 8, 8), tmp_path / "c.onnx")
    want = estimate(model, (1, 8, 8), "cortex-m7").metrics()
    quant_pre_process(str(path), str(tmp_path / "p.onnx"))

    qop = tmp_path / "q.onnx"
    quantize_static(
        tmp_path / "p.onnx", qop, _calibration(str(path)), quant_format=QuantFormat.QOperator
    )
    for f in (path, qop):
        res = run_cli("profile", "--onnx", str(f), "--target", "device", "--json")
        assert res.returncode == 0, res.stderr
        got = json.loads(res.stdout)
        for k, v in want.items():
            assert got[k] == pytest.approx(v, rel=1e-9), (f.name, k, got[k], v)
        assert got["peak_sram_bytes"] > 0 and got["flash_bytes"] > 0

    class MeanHead(torch.nn.Module):  # a user's net ending in x.mean((2, 3)): ReduceMean
        def __init__(self) -> None:
            super().__init__()
            self.conv, self.fc = torch.nn.Conv2d(3, 32, 3, padding=1), torch.nn.Linear(32, 10)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return self.fc(torch.relu(self.conv(x)).mean((2, 3)))

    net = MeanHead().eval()
    path = export_onnx(net, (3, 24, 24), tmp_path / "mean.onnx")
    want = estimate(net, (3, 24, 24), "cortex-m7").metrics()
    res = run_cli("profile", "--onnx", str(path), "--target", "device", "--json")
    got = json.loads(res.stdout)
    for k, v in want.items():  # the mean was 32 outputs' work where the tracer counts 18 432
        assert got[k] == pytest.approx(v, rel=1e-9), (k, got[k], v)
