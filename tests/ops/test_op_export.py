"""The inference read-out compiles (fullgraph) and exports to ONNX with the dynamo exporter."""

import pytest
import torch

from sampling_argmax import SamplingArgmax, SoftArgmax, soft_argmax


def test_soft_argmax_compiles_without_graph_breaks():
    # aot_eager: dynamo capture + AOTAutograd without the C++ toolchain of inductor, which takes ~1 min
    # on a loaded 2-core machine; fullgraph=True fails on any graph break (e.g. a data-dependent check).
    head = SamplingArgmax().eval()
    compiled = torch.compile(head, fullgraph=True, backend="aot_eager")
    for shape in [(2, 3, 8, 6), (1, 2, 4, 5, 6)]:
        logits = torch.randn(shape, requires_grad=True)
        out = compiled(logits)
        torch.testing.assert_close(out, soft_argmax(logits))
        out.sum().backward()
        assert torch.isfinite(logits.grad).all()


def test_soft_argmax_exports_to_onnx(tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    module = SoftArgmax().eval()
    logits = torch.randn(2, 3, 8, 6)
    batch = torch.export.Dim("batch")
    program = torch.onnx.export(module, (logits,), dynamo=True, dynamic_shapes={"logits": {0: batch}})
    path = tmp_path / "soft_argmax.onnx"
    program.save(str(path))
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    session = ReferenceEvaluator(model)
    other = torch.randn(5, 3, 8, 6) * 10  # another batch size through the dynamic axis
    (out,) = session.run(None, {model.graph.input[0].name: other.numpy()})
    torch.testing.assert_close(torch.from_numpy(out), soft_argmax(other), atol=1e-5, rtol=1e-5)
