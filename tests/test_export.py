"""`sampling-argmax export`: the exported inference path gives PyTorch's keypoints and confidences on real inputs.

ONNX files are run with onnx's reference evaluator and with onnxruntime (the [test] extra), at another batch size
than the one traced, so the batch axis is shown to be dynamic.
"""

import json

import numpy as np
import pytest
import torch

from sampling_argmax.data.base import RawInput
from sampling_argmax.inference import Predictor
from sampling_argmax.cli import main
from sampling_argmax.export import InferenceModel

pytestmark = pytest.mark.usefixtures("one_thread", "quiet")  # tests/conftest.py




def _run_onnx(path, inputs: torch.Tensor):
    onnx = pytest.importorskip("onnx")
    from onnx.reference import ReferenceEvaluator

    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["image"]
    assert [o.name for o in model.graph.output] == ["keypoints", "confidence"]
    keypoints, confidence = ReferenceEvaluator(model).run(None, {"image": inputs.numpy()})
    return torch.from_numpy(keypoints), torch.from_numpy(confidence)


def _to_original(keypoints: torch.Tensor, matrices: torch.Tensor) -> np.ndarray:
    """(B, K, 2) map units through (B, 3, 3) matrices -> original pixels."""
    keypoints = keypoints.double()
    return (keypoints @ matrices[:, :2, :2].transpose(1, 2) + matrices[:, None, :2, 2]).numpy()


def test_synthetic_onnx_and_torchscript_give_pytorchs_outputs(synthetic_run, raw_synthetic_image, tmp_path, capsys):
    _, ckpt = synthetic_run
    predictor = Predictor.from_checkpoint(ckpt)
    raws = [RawInput(raw_synthetic_image("test", index), f"test {index}") for index in range(3)]
    samples = [predictor.datamodule.prepare(raw) for raw in raws]
    inputs = torch.stack([s["image"] for s in samples])  # 3 real inputs; the export traced a batch of 2
    matrices = torch.stack([s["to_original"] for s in samples])
    expected = Predictor(predictor.module, predictor.datamodule)([raw for raw in raws])

    main(["export", "--ckpt_path", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "model.onnx")])
    assert "export:" in capsys.readouterr().out
    keypoints, confidence = _run_onnx(tmp_path / "model.onnx", inputs)
    assert keypoints.shape == (3, 2, 2) and confidence.shape == (3, 2)
    # map units through the task's to_original: the very rows `predict` writes
    np.testing.assert_allclose(_to_original(keypoints, matrices), expected.keypoints, rtol=0, atol=1e-4)
    np.testing.assert_allclose(confidence.numpy(), expected.confidence, rtol=1e-4, atol=1e-6)
    info = json.loads((tmp_path / "model.onnx.json").read_text())
    assert info["input"] == {"name": "image", "shape": ["batch", 1, 32, 32]} and info["method"] == "samp_tri"
    assert info["checkpoint_sha256"] == predictor.sha256 and info["keypoint_names"] == ["kp0", "kp1"]

    main(["export", "--ckpt_path", str(ckpt), "--format", "torchscript", "--out", str(tmp_path / "model.pt")])
    scripted = torch.jit.load(str(tmp_path / "model.pt"))
    five = torch.cat([inputs, inputs[:2].flip(-1)])  # 5 inputs, two of them mirrored: other maps, other outputs
    with torch.no_grad():
        reference = InferenceModel(predictor.module, predictor.datamodule, "image")(five)
        traced = scripted(five)
    for ours, theirs in zip(traced, reference):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=1e-5)
    assert not torch.allclose(traced[0][0], traced[0][3])  # a mirrored input is not read as the original


@pytest.mark.slow  # the dynamo export of ResNet-18 run twice (flip test): ~20 s on one loaded core
def test_mtfl_onnx_with_flip_test_matches_pytorch_on_real_faces(mtfl_run, tmp_path):
    data, _, ckpt = mtfl_run
    faces = sorted((data / "lfw_5590").iterdir())[:3]
    main(["export", "--ckpt_path", str(ckpt), "--format", "onnx", "--flip_test", "true",
          "--out", str(tmp_path / "mtfl.onnx"), "--example", str(faces[0]), str(faces[1])])
    predictor = Predictor.from_checkpoint(ckpt, flip_test=True)
    samples = [predictor.datamodule.prepare(RawInput(face, str(face))) for face in faces]
    inputs = torch.stack([s["image"] for s in samples])
    keypoints, confidence = _run_onnx(tmp_path / "mtfl.onnx", inputs)
    expected = predictor(faces)  # with the flip test, in original pixels
    # docs/inference.md and the README: within 1e-4 px of PyTorch, after to_original
    np.testing.assert_allclose(_to_original(keypoints, torch.stack([s["to_original"] for s in samples])),
                               expected.keypoints, rtol=0, atol=1e-4)
    np.testing.assert_allclose(confidence.numpy(), expected.confidence, rtol=1e-4, atol=1e-6)
    without_flip = Predictor.from_checkpoint(ckpt, flip_test=False)(faces)
    assert np.abs(without_flip.keypoints - expected.keypoints).max() > 1e-3  # the graph really holds the flip test
    assert json.loads((tmp_path / "mtfl.onnx.json").read_text())["keypoint_names"][0] == "left_eye"


def test_export_refuses_what_cannot_work(synthetic_run, tmp_path, capsys):
    _, ckpt = synthetic_run
    with pytest.raises(SystemExit) as bad_format:
        main(["export", "--ckpt_path", str(ckpt), "--format", "keras"])
    assert bad_format.value.code == 2 and "invalid choice: 'keras'" in capsys.readouterr().err
    with pytest.raises(SystemExit) as folder:
        main(["export", "--ckpt_path", str(ckpt), "--format", "onnx", "--out", str(tmp_path)])
    assert folder.value.code == 1 and "is a folder" in capsys.readouterr().err
    with pytest.raises(SystemExit) as flip:  # the synthetic task has no mirror symmetry
        main(["export", "--ckpt_path", str(ckpt), "--format", "torchscript", "--flip_test", "true",
              "--out", str(tmp_path / "m.pt")])
    assert flip.value.code == 1 and "no flip_pairs" in capsys.readouterr().err


@pytest.mark.slow  # the dynamo export of ResNet-18: ~10 s on one loaded core
def test_onnxruntime_and_torchscript_match_the_predictor_on_real_faces(mtfl_run, tmp_path):
    """The exported files, run by onnxruntime and torch.jit on real images, give `Predictor`'s pixels within 1e-4."""
    ort = pytest.importorskip("onnxruntime")
    data, _, ckpt = mtfl_run
    faces = sorted((data / "net_7876").iterdir())[:3]
    predictor = Predictor.from_checkpoint(ckpt, flip_test=False)
    samples = [predictor.datamodule.prepare(RawInput(face, str(face))) for face in faces]
    inputs = torch.stack([s["image"] for s in samples])
    matrices = torch.stack([s["to_original"] for s in samples])
    expected = predictor(faces)
    main(["export", "--ckpt_path", str(ckpt), "--format", "onnx", "--out", str(tmp_path / "m.onnx"),
          "--example", str(faces[0]), str(faces[1])])
    session = ort.InferenceSession(str(tmp_path / "m.onnx"), providers=["CPUExecutionProvider"])
    keypoints, confidence = session.run(["keypoints", "confidence"], {"image": inputs.numpy()})
    np.testing.assert_allclose(_to_original(torch.from_numpy(keypoints), matrices), expected.keypoints, atol=1e-4)
    np.testing.assert_allclose(confidence, expected.confidence, rtol=1e-4, atol=1e-6)
    main(["export", "--ckpt_path", str(ckpt), "--format", "torchscript", "--out", str(tmp_path / "m.pt")])
    with torch.no_grad():
        keypoints, confidence = torch.jit.load(str(tmp_path / "m.pt"))(inputs)
    np.testing.assert_allclose(_to_original(keypoints, matrices), expected.keypoints, atol=1e-4)
    np.testing.assert_allclose(confidence.numpy(), expected.confidence, rtol=1e-4, atol=1e-6)
