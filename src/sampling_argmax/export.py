"""``sampling-argmax export``: a checkpoint's inference path (model + the method's read-out) as ONNX or TorchScript.

The exported graph takes a batch of prepared model inputs (any batch size) and returns two tensors:

* ``keypoints`` (B, K, dims): the method's read-out (the expectation of the map, as ``test`` uses) in
  **map units** (grid cells, cell i centred at i; on point sets the points' own units);
* ``confidence`` (B, K): the method's confidence (the peak probability of the map by default).

The framing of a raw file (crop, resize, normalization) and the map-to-pixels matrix stay outside the graph:
``Predictor.from_checkpoint(ckpt).datamodule.prepare(raw)`` gives both (``to_original`` maps
``[x, y, 1]`` to original pixels). A JSON file beside the export records the input name and shape, the
keypoint names, the method and the checkpoint's SHA-256.

Example::

    sampling-argmax export --ckpt_path runs/mtfl/samp_tri/checkpoints/last.ckpt --format onnx
"""

from __future__ import annotations

import argparse
import json
import warnings
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor, nn

from sampling_argmax.data.base import LocalizationDataModule
from sampling_argmax.inference import Predictor
from sampling_argmax.readout import FlipTest, read_out
from sampling_argmax.training.checkpoints import check_output_file

__all__ = ["InferenceModel", "export_model", "export_main"]

FORMATS = ("onnx", "torchscript")
SUFFIX = {"onnx": ".onnx", "torchscript": ".torchscript.pt"}


class InferenceModel(nn.Module):
    """Model + read-out of a trained :class:`~sampling_argmax.training.module.LocalizationModule`.

    ``forward(inputs (B, *input_shape)) -> (keypoints (B, K, dims) map units, confidence (B, K))``; for point
    sets the input is the cloud (B, N, d) and the read-out runs over its points. With ``flip_test`` the
    maps of the input and of its mirror (the data module's ``mirror``) are averaged, as in evaluation.
    """

    def __init__(self, module, datamodule: LocalizationDataModule, key: str, flip_test: bool = False) -> None:
        super().__init__()
        self.model = module.model
        self.method = module.method  # a plain object: its read-out is traced into the graph
        self.key = key
        self.flip_test = flip_test
        self.flip_pairs = datamodule.flip_pairs
        self._mirror = datamodule.mirror
        if flip_test and self.flip_pairs is None:
            raise ValueError(f"--flip_test true: {type(datamodule).__name__} has no flip_pairs (no mirror symmetry)")

    def forward(self, inputs: Tensor) -> tuple[Tensor, Tensor]:

        flip = FlipTest(self.flip_pairs, self._mirror) if self.flip_test else None
        out = read_out(self.model, self.method, inputs, self.key, flip, check_finite=False)
        return out.pred_grid, out.confidence


def export_model(model: InferenceModel, example: Tensor, path: Path, format: str) -> Path:
    """Write ``model`` as ``format`` ("onnx" or "torchscript") with a dynamic batch axis; returns ``path``.

    ``example`` (B >= 2, *input_shape): a real or realistic input; tracing records the ops it runs.
    """
    if format not in FORMATS:
        raise ValueError(f"--format {format!r} must be one of {', '.join(FORMATS)}")
    if example.shape[0] < 2:
        raise ValueError("the example batch needs at least 2 inputs, so that the batch axis stays dynamic")
    model = model.eval()
    path.parent.mkdir(parents=True, exist_ok=True)
    if format == "torchscript":
        with torch.no_grad(), warnings.catch_warnings():
            # the input checks branch on shapes only, which the trace rightly fixes to the model's input shape
            warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)
            traced = torch.jit.trace(model, (example,), check_trace=False)
        traced.save(str(path))
        return path
    try:
        import onnxscript  # noqa: F401  (the dynamo exporter needs it)
    except ImportError:
        raise ImportError(
            "ONNX export needs the onnx and onnxscript packages: pip install onnx onnxscript (they are part of "
            "sampling-argmax's [test] extra), or export --format torchscript"
        ) from None
    batch = torch.export.Dim("batch", min=1)
    with torch.no_grad():
        program = torch.onnx.export(model, (example,), input_names=[model.key],
                                    output_names=["keypoints", "confidence"], dynamo=True,
                                    dynamic_shapes={"inputs": {0: batch}}, verbose=False)
    program.save(str(path))
    return path


def export_main(argv: Sequence[str] | None = None) -> Path:
    """``sampling-argmax export --ckpt_path X --format onnx|torchscript [--out FILE]``."""

    parser = argparse.ArgumentParser(
        prog="sampling-argmax export",
        description="Export a checkpoint's model and its method's read-out (keypoints in map units, confidence) "
        "with a dynamic batch axis; a JSON beside it records input shape, keypoint names, method and hash.",
    )
    parser.add_argument("--ckpt_path", required=True, type=Path, help=".ckpt written by sampling-argmax fit/compare")
    parser.add_argument("--format", required=True, choices=FORMATS)
    parser.add_argument("--out", type=Path, default=None,
                        help="output file (default: beside the checkpoint, <name>.onnx / <name>.torchscript.pt)")
    parser.add_argument("--flip_test", choices=("true", "false"), default="false",
                        help="include the flip test in the graph (two forward passes; default %(default)s)")
    parser.add_argument("--example", type=Path, nargs="*", default=None,
                        help="raw inputs of the task to trace with (default: random inputs of the model's input shape)")
    parser.add_argument("--config", type=Path, default=None,
                        help="the run's YAML, only for checkpoints that do not record their data module")
    args = parser.parse_args(argv)
    out = args.out or args.ckpt_path.with_name(args.ckpt_path.stem + SUFFIX[args.format])
    if out.is_dir():
        raise IsADirectoryError(f"--out {out} is a folder; give the file to write (e.g. {out / ('model' + SUFFIX[args.format])})")
    check_output_file(out, "--out")  # its folder can be created and written, it is no device or /proc file
    check_output_file(Path(str(out) + ".json"), "--out (its .json description)")
    predictor = Predictor.from_checkpoint(args.ckpt_path, flip_test=False, config=args.config)
    datamodule = predictor.datamodule
    shape = tuple(datamodule.input_shape)
    if args.example:
        samples = [datamodule.prepare(raw) for path in args.example for raw in datamodule.raw_inputs(path)]
        key = datamodule.input_name
        example = torch.stack([sample[key] for sample in samples])
        example = example if len(example) >= 2 else torch.cat([example, example])
    else:
        key = datamodule.input_name
        example = torch.randn(2, *shape, generator=torch.Generator().manual_seed(0))
    model = InferenceModel(predictor.module, datamodule, key, flip_test=args.flip_test == "true")
    export_model(model, example, out, args.format)
    with torch.no_grad():
        expected = model(example)
    info = {
        "format": args.format, "file": out.name, "checkpoint": str(args.ckpt_path),
        "checkpoint_sha256": predictor.sha256, "task": getattr(datamodule, "task", ""),
        "method": predictor.method_name, "flip_test": args.flip_test == "true",
        "input": {"name": key, "shape": ["batch", *shape]},
        "outputs": {"keypoints": ["batch", datamodule.num_keypoints, expected[0].shape[-1]],
                    "confidence": ["batch", datamodule.num_keypoints]},
        "keypoint_names": predictor.keypoint_names,
        "units": "keypoints in map units (grid cells, cell i centred at i; point sets: the points' units); "
                 "original = to_original @ [x, y(, z), 1] with to_original from the task's prepare()",
    }
    info_path = Path(str(out) + ".json")
    info_path.write_text(json.dumps(info, indent=1) + "\n")
    print(f"export: {out} ({args.format}, input {key} (batch, {', '.join(map(str, shape))}), method "
          f"{predictor.method_name}, checkpoint sha256 {predictor.sha256[:12]}); description {info_path}")
    return out
