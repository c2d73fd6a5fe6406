"""ONNX export of every kind of task's inference path: 1D signals, 3D volumes, OCT B-scans (one row read-out per
column), point sets, and the learned bases (their parameter maps in the graph).

Small untrained networks of each kind, wrapped as `sampling-argmax export` wraps a checkpoint's module
(:class:`InferenceModel`), are exported with the dynamo exporter at batch 2 and run with onnx's reference
evaluator at batch 3; keypoints (map units) and confidences must equal PyTorch's. The checkpoint-to-file path of
the command (framing, JSON, flip test) is tested on the synthetic 2D and MTFL tasks in test_export.py.
"""

from types import SimpleNamespace

import numpy as np
import pytest
import torch

from sampling_argmax.methods import paper_method
from sampling_argmax.models import KeypointChannels, OCTBoundaryNet, PointNet2, SmallHeatmapNet
from sampling_argmax.export import InferenceModel, export_model

pytestmark = [pytest.mark.usefixtures("one_thread", "quiet"), pytest.mark.slow]  # 4-20 s per export

#: the bound the docs state for the exported keypoints (docs/inference.md), in map units (grid cells)
KEYPOINT_ATOL = 1e-4

#: a PointNet++ small enough to export in seconds: one set abstraction of 4 centres
TINY_POINTNET = dict(sa_npoints=(4,), sa_radii=((0.3,),), sa_nsamples=((8,),), sa_mlps=(((8, 8),),),
                     global_mlp=(16,), fp_mlps=((16,), (16,)), head_width=8, dropout=0.0)

CASES = {
    # name: (network, method, input key, input shape without the batch)
    "signal_1d": (lambda: SmallHeatmapNet(2, dims=1, width=4), "samp_tri", "signal", (1, 64)),
    "volume_3d": (lambda: SmallHeatmapNet(2, dims=3, width=4), "samp_tri", "volume", (1, 16, 16, 16)),
    "oct_bscan": (lambda: OCTBoundaryNet(3, width=4, depth=2), "samp_gau", "image", (1, 32, 16)),
    "points": (lambda: PointNet2(3, **TINY_POINTNET), "samp_gau", "points", (48, 3)),
    "learned_gaussian": (lambda: KeypointChannels(SmallHeatmapNet(2 * 5, width=4), 5), "samp_lgau", "image",
                         (1, 32, 32)),
    "learned_spline": (lambda: KeypointChannels(SmallHeatmapNet(2 * 19, width=4), 19), "samp_lspline", "image",
                       (1, 32, 32)),
}


def _gather_elements():
    """GatherElements as the ONNX spec defines it. onnx's reference evaluator (1.x) only runs it when `indices`
    has the shape of `data` on every axis but the last, while the spec allows `indices` to be smaller on every
    axis; the learned spline's graph gathers such a slice."""
    from onnx.reference.op_run import OpRun

    class GatherElements(OpRun):
        def _run(self, data, indices, axis=None):
            axis = (axis or 0) % data.ndim
            data = data[tuple(slice(None) if d == axis else slice(0, s) for d, s in enumerate(indices.shape))]
            return (np.take_along_axis(data, np.where(indices < 0, indices + data.shape[axis], indices), axis),)

    return GatherElements


def _inputs(key, shape, batch, seed):
    generator = torch.Generator().manual_seed(seed)
    if key == "points":  # clouds in the unit cube, as the point tasks normalize them
        return torch.rand(batch, *shape, generator=generator)
    return torch.randn(batch, *shape, generator=generator)


@pytest.mark.parametrize("case", CASES)
def test_onnx_export_gives_pytorchs_keypoints_on_every_kind_of_task(case, tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from onnx.reference import ReferenceEvaluator

    network, method, key, shape = CASES[case]
    torch.manual_seed(0)
    module = SimpleNamespace(model=network().eval(), method=paper_method(method))
    model = InferenceModel(module, SimpleNamespace(flip_pairs=None, mirror=None), key)
    path = export_model(model, _inputs(key, shape, 2, seed=1), tmp_path / f"{case}.onnx", "onnx")
    exported = onnx.load(str(path))
    onnx.checker.check_model(exported)
    assert [i.name for i in exported.graph.input] == [key]

    inputs = _inputs(key, shape, 3, seed=2)  # another batch size than the traced one: the batch axis is dynamic
    with torch.no_grad():
        keypoints, confidence = model(inputs)
    evaluator = ReferenceEvaluator(exported, new_ops=[_gather_elements()])
    onnx_keypoints, onnx_confidence = evaluator.run(None, {key: inputs.numpy()})
    assert onnx_keypoints.shape == tuple(keypoints.shape) and np.isfinite(onnx_keypoints).all()
    np.testing.assert_allclose(onnx_keypoints, keypoints.numpy(), rtol=0, atol=KEYPOINT_ATOL)
    np.testing.assert_allclose(onnx_confidence, confidence.numpy(), rtol=1e-4, atol=1e-6)
    # the three inputs give three different read-outs: the graph depends on its input
    assert np.abs(onnx_keypoints[0] - onnx_keypoints[1]).max() > 1e-4
