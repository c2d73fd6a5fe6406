import logging
import warnings

import lightning as L
import numpy as np
import pytest
from sampling_argmax.data.synthetic import SyntheticDataModule
from sampling_argmax.methods import paper_method
from sampling_argmax.models import SmallHeatmapNet
from sampling_argmax.training import LocalizationModule
from sampling_argmax.training.module import gather_outputs

logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)

pytestmark = pytest.mark.usefixtures("one_thread")  # tests/conftest.py


def tiny_data(**kwargs):
    options = dict(dims=2, num_keypoints=2, size=32, train_size=32, val_size=13, test_size=9, batch_size=8)
    return SyntheticDataModule(**{**options, **kwargs})


def tiny_trainer(**kwargs):
    options = dict(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                   enable_model_summary=False, num_sanity_val_steps=0, accelerator="cpu")
    return L.Trainer(**{**options, **kwargs})


def test_gather_outputs_keeps_one_row_per_index_sorted():
    chunks = [
        {"index": np.array([4, 0]), "pred": np.array([[4.0], [0.0]])},
        {"index": np.array([2, 4]), "pred": np.array([[2.0], [4.0]])},  # 4 again: DistributedSampler padding
    ]
    out = gather_outputs(chunks)
    assert out["index"].tolist() == [0, 2, 4] and out["pred"][:, 0].tolist() == [0.0, 2.0, 4.0]


def test_fit_validates_every_sample_once_and_advances_the_temperature():
    L.seed_everything(0, verbose=False)
    data = tiny_data()
    method = paper_method("samp_tri", num_samples=4)
    module = LocalizationModule(SmallHeatmapNet(num_keypoints=2, width=4), method, lr=1e-3, milestones=[1])
    trainer = tiny_trainer(max_epochs=2)
    trainer.fit(module, datamodule=data)
    metrics = trainer.callback_metrics
    assert metrics["val/num_samples"] == 13
    assert set(module.last_outputs) >= {"index", "pred", "pred_grid", "confidence", "keypoints", "target"}
    assert module.last_outputs["pred"].shape == (13, 2, 2)
    assert module.last_outputs["index"].tolist() == list(range(13))
    assert method.epoch == 1 and metrics["train/tau"] == pytest.approx(method.temperature)
    assert all(np.isfinite(float(metrics[k])) for k in ("val/mean_error", "val/pck", "train/loss"))
    # MultiStepLR at epoch 1 scaled the learning rate by gamma
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-4)
    trainer.test(module, datamodule=data, verbose=False)
    assert trainer.callback_metrics["test/num_samples"] == 9


def test_keypoint_mismatch_and_flip_test_without_pairs_fail_clearly():
    data = tiny_data()
    module = LocalizationModule(SmallHeatmapNet(num_keypoints=3, width=4), paper_method("soft"))
    with pytest.raises(ValueError, match="num_keypoints=2"):
        tiny_trainer(max_steps=1).fit(module, datamodule=data)
    flip = LocalizationModule(SmallHeatmapNet(num_keypoints=2, width=4), paper_method("soft"), flip_test=True)
    with pytest.raises(ValueError, match="flip_pairs"):
        tiny_trainer().validate(flip, datamodule=data, verbose=False)


def test_flip_test_runs_with_a_datamodule_that_has_pairs():
    data = tiny_data()
    data.flip_pairs = [(0, 1)]
    L.seed_everything(0, verbose=False)
    plain = LocalizationModule(SmallHeatmapNet(num_keypoints=2, width=4), paper_method("soft"))
    flipped = LocalizationModule(SmallHeatmapNet(num_keypoints=2, width=4), paper_method("soft"), flip_test=True)
    flipped.model.load_state_dict(plain.model.state_dict())
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        tiny_trainer().validate(plain, datamodule=data, verbose=False)
        tiny_trainer().validate(flipped, datamodule=data, verbose=False)
    assert flipped.last_outputs["index"].tolist() == list(range(13))
    assert not np.allclose(plain.last_outputs["pred"], flipped.last_outputs["pred"])


def test_python_built_module_keeps_objects_out_of_hparams():
    module = LocalizationModule(SmallHeatmapNet(num_keypoints=2, width=4), paper_method("soft"), lr=5e-4)
    assert "model" not in module.hparams and "method" not in module.hparams
    assert module.hparams["lr"] == 5e-4


@pytest.mark.parametrize("kwargs,match", [({"lr": 0}, "lr"), ({"milestones": [0]}, "milestones")])
def test_bad_module_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        LocalizationModule(SmallHeatmapNet(num_keypoints=2, width=4), paper_method("soft"), **kwargs)
    with pytest.raises(ValueError, match="method"):
        LocalizationModule(SmallHeatmapNet(num_keypoints=2, width=4), "soft")


@pytest.mark.parametrize(
    "name",
    ["sampling_argmax.training.module", "sampling_argmax.training.lightning_cli", "sampling_argmax.data.synthetic",
     "sampling_argmax.data.base", "sampling_argmax.metrics.base",
     "sampling_argmax.metrics.localization", "sampling_argmax.metrics.calibration",
     "sampling_argmax.models.resnet_deconv", "sampling_argmax.models.small", "sampling_argmax.models.backbones",
     "sampling_argmax.data.keypoint_meta", "sampling_argmax.data.csv_landmarks", "sampling_argmax.metrics.normalized",
     "sampling_argmax.codecs.base", "sampling_argmax.codecs.affine", "sampling_argmax.codecs.topdown",
     "sampling_argmax.codecs.volume", "sampling_argmax.codecs.bscan", "sampling_argmax.codecs.points",
     "sampling_argmax.readout", "sampling_argmax.methods", "sampling_argmax.methods.base",
     "sampling_argmax.methods.catalogue", "sampling_argmax.data.images", "sampling_argmax.data.transforms"],
)
def test_docstring_examples_run(name):
    import doctest
    import importlib

    failed, attempted = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert attempted > 0 and failed == 0
