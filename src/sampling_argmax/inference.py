"""Use a trained checkpoint on one's own files: keypoints in original pixels (or object units) and a confidence.

No Trainer is involved: :class:`Predictor` rebuilds the model, the method and the data module recorded in a
checkpoint written by ``sampling-argmax fit``/``compare``, frames each raw input exactly as the task's
evaluation does (:meth:`~sampling_argmax.data.base.LocalizationDataModule.prepare`), and reads out the
method's expectation and its per-keypoint confidence (peak probability of the map: the calibrated score
of the paper). ``sampling-argmax predict --ckpt_path X --input PATH`` is :func:`predict_main`.

Example:
    >>> predictor = Predictor.from_checkpoint("runs/mtfl/samp_tri/checkpoints/last.ckpt")  # doctest: +SKIP
    >>> keypoints, confidence = predictor(["face.jpg", rgb_array])                       # doctest: +SKIP
    >>> keypoints.shape, confidence.shape                                                # doctest: +SKIP
    ((2, 5, 2), (2, 5))
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from torch import Tensor

from sampling_argmax._devices import check_device
from sampling_argmax._io import file_sha256, write_rows
from sampling_argmax.data.base import (
    INPUT_KEYS,
    LocalizationDataModule,
    RawInput,
    input_key,
    without_data_files,
)
from sampling_argmax.training.checkpoints import check_output_folder
from sampling_argmax.training.trained import load_trained

__all__ = ["Prediction", "Predictor", "PredictFailures", "draw_overlay", "predict_main"]


class Prediction(NamedTuple):
    """What :class:`Predictor` returns for N inputs."""

    keypoints: np.ndarray  # (N, K, dims) float64, original pixels (x, y(, z)) or object units
    confidence: np.ndarray  # (N, K) float32, the method's confidence (peak probability by default)


class PredictFailures(ValueError):
    """Some inputs could not be predicted; the others were written. The message lists each failure."""


def _as_raw(item: Any, number: int) -> RawInput:
    if isinstance(item, RawInput):
        return item
    if isinstance(item, np.ndarray):
        return RawInput(item, f"array[{number}]")
    if isinstance(item, (str, os.PathLike)):
        return RawInput(Path(item), str(item))
    raise ValueError(f"input #{number} is a {type(item).__name__}; give a file path, a numpy array or a RawInput")


class Predictor:
    """A trained model, its method and its task's framing, ready for raw inputs.

    Args:
        module: a :class:`~sampling_argmax.training.module.LocalizationModule` (model + method; its
            ``flip_test`` setting is used).
        datamodule: the task's data module: its :meth:`prepare` frames raw inputs, its flip pairs and
            mirror serve the flip test. It need not have its dataset folder (see :meth:`from_checkpoint`).
        checkpoint: the file the weights came from (recorded in rows with its SHA-256), if any.
        batch_size: inputs per forward pass.
        device: where the model runs ("cpu", "cuda", ...).
    """

    def __init__(self, module, datamodule: LocalizationDataModule, checkpoint: str | os.PathLike | None = None,
                 batch_size: int = 16, device: str | torch.device = "cpu") -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size={batch_size} must be >= 1")
        device = check_device(device, "device")
        if type(datamodule).prepare is LocalizationDataModule.prepare:
            try:
                datamodule.prepare(RawInput(Path(), ""))
            except NotImplementedError as error:  # the contract's "does not support", as a user error
                raise ValueError(str(error)) from None
        self.module = module.to(device).eval()
        self.datamodule = datamodule
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.checkpoint = None if checkpoint is None else Path(checkpoint)
        self.sha256 = None if checkpoint is None else file_sha256(checkpoint)

    @classmethod
    def from_checkpoint(cls, path: str | os.PathLike, device: str | torch.device = "cpu", batch_size: int = 16,
                        flip_test: bool | None = None, config: str | os.PathLike | None = None) -> Predictor:
        """Rebuild model, method and data module from a checkpoint written by the CLI.

        The dataset folder is not needed (only the data module's framing is used). ``flip_test`` None = as
        recorded in the checkpoint; ``config``: the run's YAML, for checkpoints that do not record their
        data module.
        """

        with without_data_files():
            module, datamodule = load_trained(Path(path), None if config is None else Path(config))
        if flip_test is not None:
            module.flip_test = bool(flip_test)
        return cls(module, datamodule, path, batch_size, device)

    # ---------------------------------------------------------------- what the rows say

    @property
    def method_name(self) -> str:
        return getattr(self.module.method, "name", type(self.module.method).__name__)

    @property
    def keypoint_names(self) -> list[str]:
        names = getattr(self.datamodule, "keypoint_names", None)
        count = self.datamodule.num_keypoints
        return list(names) if names is not None and len(names) == count else [f"kp{k}" for k in range(count)]

    # ---------------------------------------------------------------- inputs

    def inputs(self, paths: Sequence[str | os.PathLike], boxes: str | os.PathLike | None = None
               ) -> tuple[list[RawInput], list[Path]]:
        """The raw inputs that paths (files, folders, annotation files) stand for, and the files of given
        folders that the task does not read (to report, never to drop silently)."""
        raws, ignored = [], []
        for path in map(Path, paths):
            found = self.datamodule.raw_inputs(path, None if boxes is None else Path(boxes))
            if path.is_dir():
                used = {Path(r.source) for r in found if not isinstance(r.source, np.ndarray)}
                ignored += sorted(p for p in path.iterdir() if p.is_file() and p not in used)
                if not found:
                    suffixes = " ".join(self.datamodule.predict_suffixes) or "none"
                    raise FileNotFoundError(f"--input {path}: no input files in this folder (read: {suffixes})")
            raws += found
        return raws, ignored

    # ---------------------------------------------------------------- running

    @torch.no_grad()
    def run(self, raws: Iterable[RawInput], progress: bool = False) -> Iterator[tuple[RawInput, dict | Exception]]:
        """(input, row) per input in order, or (input, the exception) for an input that cannot be read.

        A row: "input", "keypoints" (K, dims) original units, "confidence" (K,), "method",
        "checkpoint_sha256", and what the task's framing adds (e.g. "box", "score", "image").
        """
        raws = list(raws)
        bar = None
        if progress:
            from tqdm import tqdm

            bar = tqdm(total=len(raws), desc="predict", unit="input", file=sys.stderr)
        pending: list[tuple[RawInput, dict]] = []
        for raw in raws:
            try:
                sample = self.datamodule.prepare(raw)
                input_key(sample)
            except Exception as error:  # noqa: BLE001 - any unreadable input is reported on its own row
                yield from self._flush(pending, bar)
                pending = []
                if bar is not None:
                    bar.update(1)
                yield raw, error
                continue
            # one batch holds one input shape (point clouds may differ in size)
            if pending and (len(pending) == self.batch_size or _shape(pending[0][1]) != _shape(sample)):
                yield from self._flush(pending, bar)
                pending = []
            pending.append((raw, sample))
        yield from self._flush(pending, bar)
        if bar is not None:
            bar.close()

    def _flush(self, pending: list[tuple[RawInput, dict]], bar) -> Iterator[tuple[RawInput, dict | Exception]]:
        """Rows of a batch; when the batch fails, each input alone, so one unusable input (e.g. a cloud with
        a 1e30 coordinate) fails on its own row and the others are predicted."""
        if not pending:
            return
        key = input_key(pending[0][1])
        inputs = torch.stack([s[key] for _, s in pending]).to(self.device)
        matrices = [s.get("to_original") for _, s in pending]
        try:
            keypoints, confidence = self.forward(inputs, key, None if any(m is None for m in matrices)
                                                 else torch.stack([torch.as_tensor(m) for m in matrices]))
        except Exception as error:  # noqa: BLE001 - reported per input, never for the whole folder
            if len(pending) > 1:
                for item in pending:
                    yield from self._flush([item], bar)
                return
            values = inputs.detach().float()
            finite = values[torch.isfinite(values)]
            largest = float(finite.abs().max()) if finite.numel() else float("nan")
            if bar is not None:
                bar.update(1)
            yield pending[0][0], ValueError(
                f"the model failed on this input ({type(error).__name__}: {str(error)[:200]}); its prepared "
                f"{key} holds values up to {largest:.3g} in magnitude"
                f"{'' if finite.numel() == values.numel() else ' and NaN/inf'}: check the file")
            return
        for n, (raw, sample) in enumerate(pending):
            row = {"input": raw.name, "keypoints": keypoints[n].tolist(), "confidence": confidence[n].tolist(),
                   "method": self.method_name, "checkpoint_sha256": self.sha256}
            row.update({k: _plain(v) for k, v in raw.extra.items() if not k.startswith("_")})  # "_": task-private
            row.update({k: _plain(v) for k, v in sample.items() if k not in INPUT_KEYS and k != "to_original"})
            if bar is not None:
                bar.update(1)
            yield raw, row

    def forward(self, inputs: Tensor, key: str, to_original: Tensor | None) -> tuple[np.ndarray, np.ndarray]:
        """Model + read-out on a prepared batch: (keypoints (B, K, dims) float64 original units, confidence (B, K)).

        The same calls as the training module's evaluation step, so a file predicts what ``test`` scores.
        """

        batch = {key: inputs} if to_original is None else {key: inputs, "to_original": to_original}
        out = self.module.read_out(batch, self.datamodule)
        pred = out.pred_grid.double() if out.pred is None else out.pred
        return pred.cpu().numpy(), out.confidence.cpu().numpy()

    def __call__(self, inputs: Any) -> Prediction:
        """Predict one input or a list of them: paths (images, point-cloud files, ...) or arrays in the task's
        raw layout (e.g. (H, W, 3) uint8 RGB). Raises the first input's error, naming it."""
        single = isinstance(inputs, (str, os.PathLike, np.ndarray, RawInput))
        raws = [_as_raw(item, n) for n, item in enumerate([inputs] if single else list(inputs))]
        keypoints, confidence = [], []
        for raw, row in self.run(raws):
            if isinstance(row, Exception):
                raise row
            keypoints.append(row["keypoints"])
            confidence.append(row["confidence"])
        return Prediction(np.asarray(keypoints, np.float64), np.asarray(confidence, np.float32))


def _shape(sample: dict) -> tuple[int, ...]:
    return tuple(sample[input_key(sample)].shape)


def _plain(value: Any) -> Any:
    """A JSON-ready copy of a row value (tensors and arrays as lists)."""
    if isinstance(value, Tensor):
        value = value.detach().cpu().numpy()
    if isinstance(value, np.ndarray):
        return value.tolist()
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, (tuple, list)):
        return [_plain(v) for v in value]
    if isinstance(value, Path):
        return str(value)
    return value


# -------------------------------------------------------------------------------------------------- files


_COLORS = [(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189), (140, 86, 75),
           (227, 119, 194), (127, 127, 127), (188, 189, 34), (23, 190, 207)]  # tab10, RGB


def draw_overlay(image: np.ndarray, rows: Sequence[dict], path: Path, min_side: int = 256,
                 groups: int | None = None, skeleton: Sequence[tuple[int, int]] = ()) -> Path:
    """Draw the rows' keypoints (a disc per keypoint, coloured by keypoint index, with its confidence when
    K <= 8; with ``groups``, each of that many equal consecutive runs of keypoints as one line coloured by
    run), the ``skeleton`` (0-based keypoint index pairs, white lines under the discs) and boxes over an
    (H, W, 3) uint8 RGB image; small images are enlarged (nearest) to ``min_side`` first so the markers stay
    readable. Writes a PNG."""
    import cv2

    scale = max(1, int(np.ceil(min_side / max(image.shape[:2]))))
    canvas = np.ascontiguousarray(np.repeat(np.repeat(image, scale, 0), scale, 1)[..., ::-1])  # BGR for cv2
    radius = max(3, round(max(canvas.shape[:2]) / 90))
    font = 0.3 + radius / 20

    def at(x: float, y: float) -> tuple[int, int]:  # original pixel centre -> enlarged pixel centre
        return round((x + 0.5) * scale - 0.5), round((y + 0.5) * scale - 0.5)

    for row in rows:
        if row.get("box") is not None:
            x, y, w, h = row["box"]
            cv2.rectangle(canvas, at(x, y), at(x + w, y + h), (255, 255, 255), max(1, radius // 2))
        points, confidence = row["keypoints"], row["confidence"]
        if groups:  # e.g. OCT boundaries: one polyline per boundary
            for g, run in enumerate(np.array_split(np.asarray(points, np.float64)[:, :2], groups)):
                line = np.array([at(x, y) for x, y in run], np.int32)
                cv2.polylines(canvas, [line], False, _COLORS[g % len(_COLORS)][::-1], 1, cv2.LINE_AA)
            continue
        for a, b in skeleton:
            cv2.line(canvas, at(*points[a][:2]), at(*points[b][:2]), (255, 255, 255), max(1, radius // 2), cv2.LINE_AA)
        for k, ((x, y, *_), conf) in enumerate(zip(points, confidence)):
            color = _COLORS[k % len(_COLORS)][::-1]
            cv2.circle(canvas, at(x, y), radius, color, -1, cv2.LINE_AA)
            cv2.circle(canvas, at(x, y), radius, (255, 255, 255), 1, cv2.LINE_AA)
            if len(points) <= 8:  # the confidence beside its keypoint, outlined so it reads on any background
                u, v = at(x, y)
                where = (u + radius + 2, v + radius)
                cv2.putText(canvas, f"{conf:.2f}", where, cv2.FONT_HERSHEY_SIMPLEX, font, (0, 0, 0), 3, cv2.LINE_AA)
                cv2.putText(canvas, f"{conf:.2f}", where, cv2.FONT_HERSHEY_SIMPLEX, font, color, 1, cv2.LINE_AA)
    path.parent.mkdir(parents=True, exist_ok=True)
    if not cv2.imwrite(str(path), canvas):
        raise OSError(f"cannot write the overlay {path}")
    return path


def _draw_plot(inputs: np.ndarray, key: str, to_original: np.ndarray | None, rows: Sequence[dict], path: Path) -> Path:
    """Overlay of a non-image input (the prepared model input): a signal with its keypoints, a volume seen
    along z (maximum projection), a point cloud seen from above (mapped to object units)."""
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 3 if key == "signal" else 5))
    if key == "signal":
        ax.plot(inputs.mean(0), color="0.4", lw=0.8)
    elif key == "volume":
        ax.imshow(inputs.mean(0).max(axis=0), cmap="gray")
    else:
        cloud = inputs if to_original is None else inputs @ to_original[:-1, :-1].T + to_original[:-1, -1]
        ax.scatter(cloud[:, 0], cloud[:, 1], s=2, color="0.6")
        ax.set_aspect("equal")
    for row in rows:
        for k, (point, conf) in enumerate(zip(row["keypoints"], row["confidence"])):
            color = np.array(_COLORS[k % len(_COLORS)]) / 255
            if key == "signal":
                ax.axvline(point[0], color=color, lw=1.5, label=f"{k}: {conf:.2f}")
            else:
                ax.scatter(point[0], point[1], s=60, color=color, edgecolors="white", label=f"{k}: {conf:.2f}")
    ax.legend(fontsize=7, title="confidence", title_fontsize=7)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def draw_rows(pairs: Sequence[tuple[RawInput, dict]], folder: Path, datamodule: LocalizationDataModule) -> list[Path]:
    """One overlay per picture (all its rows: e.g. every person box of an image), ``<file name>.png`` (a
    named part of a file, ``<file>:<part>``, as ``<file>_<part>.png``).

    Images are drawn over the original file; signals, volumes and clouds as plots of the prepared input.
    """
    groups: dict[str, tuple[RawInput, list[dict]]] = {}
    for raw, row in pairs:  # the boxes of one image share it; other inputs are pictures of their own
        key = str(raw.source) if isinstance(raw.source, Path) and (raw.box is not None or raw.name == str(raw.source)) \
            else raw.name  # e.g. "scan.vol:b3", "testing.txt:12"
        groups.setdefault(key, (raw, []))[1].append(row)
    written, used = [], set()
    for key, (raw, rows) in groups.items():
        base = Path(key).name if isinstance(raw.source, Path) else key.replace("/", "_")
        base = base.replace(":", "_")
        name, number = f"{base}.png", 1  # the whole file name: a.npy and a.png get a.npy.png and a.png.png
        while name in used:  # the same file name in two folders
            number += 1
            name = f"{base}.{number}.png"
        used.add(name)
        sample = datamodule.prepare(raw)  # read again: drawing is rare, keeping every input would cost memory
        kind = input_key(sample)
        image = datamodule.display(raw) if kind == "image" else None
        if image is not None:
            written.append(draw_overlay(image, rows, folder / name, groups=datamodule.keypoint_groups,
                                        skeleton=getattr(datamodule, "skeleton", ())))
        else:
            matrix = sample.get("to_original")
            written.append(_draw_plot(sample[kind].float().numpy(), kind,
                                      None if matrix is None else np.asarray(matrix, np.float64), rows, folder / name))
    return written


# -------------------------------------------------------------------------------------------------- command line


def predict_main(argv: Sequence[str] | None = None) -> list[dict]:
    """``sampling-argmax predict --ckpt_path X --input PATH [PATH ...]``: rows, files, failures. Returns the rows."""
    parser = argparse.ArgumentParser(
        prog="sampling-argmax predict",
        description="Predict keypoints and their confidence on your own files with a trained checkpoint. Without "
        "--input, `sampling-argmax predict --config C --ckpt_path X` predicts the task's test split (LightningCLI; "
        "its options: `sampling-argmax predict --config C --help`).",
    )
    parser.add_argument("--ckpt_path", required=True, type=Path, help=".ckpt written by sampling-argmax fit/compare")
    parser.add_argument("--input", nargs="+", required=True, type=Path,
                        help="images, folders of images (point-cloud files for point tasks), or a task's annotation "
                        "file (MTFL training.txt/testing.txt, a COCO keypoint json, a landmark CSV)")
    parser.add_argument("--boxes", type=Path, default=None,
                        help="top-down tasks: person boxes, a COCO detection-results json (default: the whole image, "
                        "or the annotation json's ground-truth boxes)")
    parser.add_argument("--out", type=Path, default=Path("predictions"),
                        help="output folder: predictions.json, predictions.csv, failures.csv, overlays/ (default %(default)s)")
    parser.add_argument("--draw", action="store_true", help="also write overlays/<input file name>.png: the keypoints drawn with their confidence")
    parser.add_argument("--batch_size", type=int, default=16)
    parser.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1, ... (default %(default)s)")
    parser.add_argument("--flip_test", choices=("true", "false"), default=None,
                        help="average with the mirrored input (default: as the checkpoint was evaluated)")
    parser.add_argument("--config", type=Path, default=None,
                        help="the run's YAML, only for checkpoints that do not record their data module")
    parser.add_argument("--no_progress", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.batch_size < 1:
        parser.error(f"--batch_size {args.batch_size} must be >= 1")
    check_device(args.device)
    check_output_folder(args.out, "--out")  # a file, or a folder that cannot be written: before any work
    flip = None if args.flip_test is None else args.flip_test == "true"
    predictor = Predictor.from_checkpoint(args.ckpt_path, args.device, args.batch_size, flip, args.config)
    raws, ignored = predictor.inputs(args.input, args.boxes)
    if ignored:
        shown = ", ".join(p.name for p in ignored[:5]) + (", ..." if len(ignored) > 5 else "")
        print(f"predict: {len(ignored)} file(s) of the input folder(s) are not inputs of this task "
              f"({' '.join(predictor.datamodule.predict_suffixes)}) and were not read: {shown}", file=sys.stderr)
    if not raws:
        raise ValueError(f"--input {' '.join(map(str, args.input))}: nothing to predict (no person boxes?)")
    pairs, failures = [], []
    for raw, row in predictor.run(raws, progress=not args.no_progress):
        if isinstance(row, Exception):
            failures.append((raw, row))
        else:
            pairs.append((raw, row))
    rows = [row for _, row in pairs]
    written = write_rows(rows, args.out, predictor.keypoint_names)
    if args.draw and pairs:
        written.append(draw_rows(pairs, args.out / "overlays", predictor.datamodule)[0].parent)
    failures_file = args.out / "failures.csv"
    if failures:
        with open(failures_file, "w", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["input", "error"])
            writer.writerows((raw.name, _reason(raw, error)) for raw, error in failures)
        written.append(failures_file)
    elif failures_file.exists():
        failures_file.unlink()  # a stale list from an earlier run in the same folder would mislead
    print(f"predict: {len(rows)} of {len(raws)} inputs, method {predictor.method_name}, checkpoint "
          f"{args.ckpt_path} (sha256 {predictor.sha256[:12]}) -> {', '.join(map(str, written))}")
    if failures:
        listed = "\n".join(f"  {raw.name}: {_reason(raw, error)}" for raw, error in failures[:20])
        more = f"\n  ... {len(failures) - 20} more in {failures_file}" if len(failures) > 20 else ""
        raise PredictFailures(f"{len(failures)} of {len(raws)} inputs failed (the others were written):\n"
                              f"{listed}{more}")
    return rows


def _reason(raw: RawInput, error: Exception) -> str:
    """The error of one input without repeating its name (the tasks' messages start with it)."""
    text = str(error).removeprefix(f"{raw.name}: ")
    return f"{text} ({type(error).__name__})"
