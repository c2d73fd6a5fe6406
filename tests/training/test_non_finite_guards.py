"""The guards against broken weights: training refuses to start from them, evaluation refuses the non-finite
predictions they give, and so does the Predictor (no Trainer). Each is reached with a real checkpoint whose
weights were broken on disk, as a crashed or diverged run would leave them."""

import pytest
import torch

import sampling_argmax

from sampling_argmax.inference import Predictor
from sampling_argmax.cli import main
from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI
from sampling_argmax.training.module import DivergedError

pytestmark = pytest.mark.usefixtures("one_thread", "quiet")  # tests/conftest.py


@pytest.fixture
def broken_checkpoint(synthetic_run, tmp_path):
    """The tiny synthetic checkpoint with one NaN in its first convolution's weight: (path, that weight's name)."""
    _, ckpt = synthetic_run
    state = torch.load(ckpt, map_location="cpu", weights_only=True)
    name = next(k for k, v in state["state_dict"].items() if k.endswith("weight") and v.dim() == 4)
    state["state_dict"][name].view(-1)[0] = float("nan")
    path = tmp_path / "broken.ckpt"
    torch.save(state, path)
    return path, name.removeprefix("model.")


def test_evaluation_refuses_non_finite_predictions_and_names_the_broken_weights(broken_checkpoint, synthetic_args,
                                                                                tmp_path, exits):
    path, name = broken_checkpoint
    args = [*synthetic_args, "--trainer.logger", "false", "--ckpt_path", str(path)]
    # with the input checks on, the read-out refuses the NaN logits first
    with exits(1, "sampling-argmax test: error: logits contain NaN or inf; the network diverged"):
        main(["test", *args, "--trainer.default_root_dir", str(tmp_path / "checked")])
    previous = sampling_argmax.set_input_checks(False)
    try:
        for command in ("test", "validate"):
            with exits(1, f"sampling-argmax {command}: error: non-finite predictions (samp_tri): the model's weights "
                          f"are broken or training diverged; lower the learning rate, or use an earlier checkpoint "
                          f"({name} hold NaN or inf)"):
                main([command, *args, "--trainer.default_root_dir", str(tmp_path / command)])
    finally:
        sampling_argmax.set_input_checks(previous)


def test_training_refuses_to_start_from_non_finite_weights(broken_checkpoint, synthetic_args, tmp_path):
    path, name = broken_checkpoint
    # resuming from the broken file: stopped before the first step, nothing written
    with pytest.raises(DivergedError, match=rf"the model starts with non-finite values in \[.*{name}.*\]"):
        SamplingArgmaxCLI(args=["fit", *synthetic_args, "--trainer.logger", "false", "--trainer.max_epochs", "2",
                                "--trainer.default_root_dir", str(tmp_path / "resumed"), "--ckpt_path", str(path)])
    assert not list((tmp_path / "resumed").rglob("*.ckpt"))
    # weights broken in memory before fit (e.g. a bad initialization or a broken --pretrained file)
    cli = SamplingArgmaxCLI(args=[*synthetic_args, "--trainer.logger", "false",
                                  "--trainer.default_root_dir", str(tmp_path / "fresh")], run=False)
    with torch.no_grad():
        dict(cli.model.model.named_parameters())[name].view(-1)[3] = float("inf")
    with pytest.raises(DivergedError, match="the model starts with non-finite values"):
        cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    assert cli.trainer.global_step == 0 and not list((tmp_path / "fresh").rglob("*.ckpt"))


def test_the_predictor_refuses_non_finite_predictions(broken_checkpoint, synthetic_run, raw_synthetic_image):
    path, _ = broken_checkpoint
    image = raw_synthetic_image("test", 0)
    Predictor.from_checkpoint(synthetic_run[1])(image)  # the unbroken checkpoint predicts this image
    predictor = Predictor.from_checkpoint(path)
    with pytest.raises(ValueError, match="logits contain NaN or inf"):  # the read-out's input check comes first
        predictor(image)
    previous = sampling_argmax.set_input_checks(False)  # as under torch.compile or export, where it is skipped
    try:
        with pytest.raises(ValueError, match=r"the model failed on this input \(FloatingPointError: non-finite "
                                             r"predictions \(samp_tri\): the model's weights are broken"):
            predictor(image)
    finally:
        sampling_argmax.set_input_checks(previous)
