"""The learned-basis methods through the CLI: a model that outputs the laws' parameters, the checks that pair them."""

from pathlib import Path

import pytest
import torch

from sampling_argmax.data.synthetic import SyntheticDataModule
from sampling_argmax.methods import paper_method
from sampling_argmax.models import KeypointChannels, SmallHeatmapNet
from sampling_argmax.training.module import LocalizationModule

REPO = Path(__file__).resolve().parents[2]
COARSE = [str(REPO / "configs" / "synthetic.yaml"), str(REPO / "configs" / "learned_bases" / "synthetic_coarse.yaml")]
TINY = ["--data.init_args.train_size", "32", "--data.init_args.val_size", "8", "--data.init_args.test_size", "8",
        "--data.init_args.batch_size", "8", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
        "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false"]


@pytest.mark.parametrize("method,overlay", [("samp_lgau", "synthetic_coarse_lgau.yaml"),
                                            ("samp_lspline", "synthetic_coarse_lspline.yaml")])
def test_compare_trains_and_tests_a_learned_basis_on_coarse_maps(tmp_path, method, overlay, drawn):
    from sampling_argmax.training.compare import compare_main

    configs = [*COARSE, str(REPO / "configs" / "learned_bases" / overlay)]
    rows = compare_main([*(a for c in configs for a in ("--config", c)), "--methods", method, "--seeds", "0",
                         "--out", str(tmp_path / "report"), "--num_show", "2", *TINY])
    assert rows[0]["method"] == method and torch.isfinite(torch.tensor(rows[0]["mean_error"]))
    assert drawn(tmp_path / "report" / "maps.png") > 0.01, drawn(tmp_path / "report" / "maps.png")


def _module(method_name, channels, flip_test=False):
    model = SmallHeatmapNet(num_keypoints=3 * channels, output_stride=4)
    model = KeypointChannels(model, channels) if channels > 1 else model
    return LocalizationModule(model=model, method=paper_method(method_name), flip_test=flip_test)


def test_a_learned_basis_needs_the_parameter_maps_and_says_how_many():
    data = SyntheticDataModule(dims=2, size=48, output_stride=4)
    _module("samp_lgau", 5).check_task(data)  # 1 + 2 axes x 2 parameters
    with pytest.raises(ValueError, match="samp_lgau reads 5 maps per keypoint"):
        _module("samp_lgau", 1).check_task(data)
    with pytest.raises(ValueError, match="samp_lspline reads 19 maps per keypoint"):
        _module("samp_lspline", 5).check_task(data)
    with pytest.raises(ValueError, match="flip_test=True averages probability maps"):
        _module("samp_lgau", 5, flip_test=True).check_task(data)
