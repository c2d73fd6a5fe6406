"""Any COCO-format keypoint dataset (an animal, a hand, a tool, a medical landmark), top-down, with no code.

The json's ``categories`` entry says the keypoints: ``keypoints`` (the K names, in the order of each
annotation's (x, y, v) triples) and ``skeleton`` (1-based index pairs); ``--data.category`` picks one where
there are several. Flip pairs are inferred from left/right names (:mod:`~sampling_argmax.data.keypoint_meta`)
or given with ``--data.flip_pairs``; OKS sigmas with ``--data.sigmas`` (default
:data:`~sampling_argmax.data.keypoint_meta.DEFAULT_SIGMA` each). The model's K follows the json (the CLI sets
``num_keypoints: null`` of the config from :meth:`COCOFormatDataModule.num_keypoints_of`), and the checkpoint
records the resolved ``metainfo``, so ``predict`` needs no json.

Same crops, augmentation (no half-body crops: they need the person's upper/lower body), loaders,
evaluation (:class:`~sampling_argmax.metrics.coco.COCOEvaluator` with the category's sigmas) and ``predict``
as :class:`~sampling_argmax.data.coco.COCODataModule`, whose methods it shares; its own constructor takes the
files of each stage instead of the COCO 2017 layout. configs/coco_format.yaml; docs/own_data.md.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sampling_argmax.data.base import LocalizationDataModule, check_loader_args
from sampling_argmax.data.coco import COCODataModule, COCOKeypoints
from sampling_argmax.data.coco_files import _annotation_data
from sampling_argmax.data.keypoint_meta import KeypointMeta, category_meta

__all__ = ["COCOFormatDataModule"]

_STAGES = ("train", "val", "test")


def _first_ann_file(args: Mapping[str, Any]) -> str | None:
    return next((args.get(f"{stage}_ann_file") for stage in _STAGES if args.get(f"{stage}_ann_file")), None)


class COCOFormatDataModule(COCODataModule):
    """Top-down keypoints of one category of a COCO-format json (CVAT, Label Studio, ... exports).

    Args:
        train_ann_file, val_ann_file, test_ann_file: the stages' COCO keypoint jsons (relative to ``data_root``).
        train_image_dir, val_image_dir, test_image_dir: their image folders (``file_name`` is relative to it);
            None = the json's own folder.
        val_detection_file, test_detection_file: detection results json (boxes of the category); None = the
            ground-truth boxes.
        data_root: folder that relative paths are resolved against; None = the current folder.
        category: the category's name or id where the json has several keypoint categories.
        flip_pairs: [[left, right], ...] keypoint names or 0-based indices; None = inferred from the names
            (``left_x``/``right_x``, ``l_x``/``r_x``, ``LeftX``/``RightX``); [] = none.
        sigmas: K OKS constants (COCO's are 0.025-0.107); None = 0.05 each.
        metainfo: the resolved keypoints (names, skeleton, flip_pairs, sigmas, category_id, category) as ``fit``
            records them in the checkpoint; None = read from the first given json. Given, it must agree with
            every json read.
        batch_size, num_workers, det_score_threshold, input_size, heatmap_size, flip_prob, rotation,
            rotation_prob, scale, padding: as :class:`~sampling_argmax.data.coco.COCODataModule`.
    """

    task = "coco_format"
    data_folder = ""
    half_body_parts = None

    def __init__(
        self,
        train_ann_file: str | None = None,
        train_image_dir: str | None = None,
        val_ann_file: str | None = None,
        val_image_dir: str | None = None,
        test_ann_file: str | None = None,
        test_image_dir: str | None = None,
        val_detection_file: str | None = None,
        test_detection_file: str | None = None,
        data_root: str | None = None,
        category: str | int | None = None,
        flip_pairs: list[list[str | int]] | None = None,
        sigmas: list[float] | None = None,
        metainfo: dict[str, Any] | None = None,
        batch_size: int = 32,
        num_workers: int = 4,
        det_score_threshold: float = 0.0,
        input_size: tuple[int, int] = (192, 256),
        heatmap_size: tuple[int, int] = (48, 64),
        flip_prob: float = 0.5,
        rotation: float = 40.0,
        rotation_prob: float = 0.6,
        scale: float = 0.3,
        padding: float = 1.25,
    ) -> None:
        # COCODataModule's constructor is for the COCO 2017 layout; the attributes its methods read are set here
        LocalizationDataModule.__init__(self)
        check_loader_args(batch_size, num_workers)
        self.save_hyperparameters()
        self.data_root = Path(data_root).expanduser() if data_root else Path(".")
        self.batch_size, self.num_workers = batch_size, num_workers
        self.splits = {
            "train": ("train", train_ann_file, train_image_dir, None),
            "val": ("val", val_ann_file, val_image_dir, val_detection_file),
            "test": ("test", test_ann_file, test_image_dir, test_detection_file),
        }
        self.det_score_threshold = det_score_threshold
        self.dataset_kwargs = dict(input_size=tuple(input_size), heatmap_size=tuple(heatmap_size), flip_prob=flip_prob,
                                   rotation=rotation, rotation_prob=rotation_prob, scale=scale, half_body_prob=0.0,
                                   padding=padding)
        self.datasets: dict[str, COCOKeypoints] = {}
        self.meta = self.resolve_meta(dict(train_ann_file=train_ann_file, val_ann_file=val_ann_file,
                                           test_ann_file=test_ann_file, data_root=data_root, category=category,
                                           flip_pairs=flip_pairs, sigmas=sigmas, metainfo=metainfo))
        if metainfo is None:  # the checkpoint records what the json said: predict needs no json
            self.hparams.update(metainfo=self.meta.as_dict(), flip_pairs=None, sigmas=None)  # the metainfo holds them

    # ---------------------------------------------------------------- the keypoints

    @classmethod
    def resolve_meta(cls, args: Mapping[str, Any]) -> KeypointMeta:
        """The keypoints of constructor arguments ``args``: ``metainfo`` if recorded, else the first given json's
        category with ``flip_pairs`` and ``sigmas`` applied."""
        recorded = args.get("metainfo")
        if recorded is not None:
            if args.get("flip_pairs") is not None or args.get("sigmas") is not None:
                raise ValueError("--data.metainfo (recorded by fit) already holds flip_pairs and sigmas; drop "
                                 "--data.flip_pairs/--data.sigmas or the metainfo")
            try:
                return KeypointMeta(**{k: (tuple(map(tuple, v)) if k in ("skeleton", "flip_pairs") else v)
                                       for k, v in dict(recorded).items()}, source="--data.metainfo")
            except TypeError as error:
                raise ValueError(f"--data.metainfo {dict(recorded)!r:.200} is not a recorded keypoint description "
                                 f"({error}); drop it to read the json's category") from None
        ann = _first_ann_file(args)
        if ann is None:
            raise ValueError("COCOFormatDataModule needs an annotation json: pass --data.train_ann_file (and "
                             "--data.val_ann_file, --data.test_ann_file) of a COCO keypoint json")
        root = Path(args["data_root"]).expanduser() if args.get("data_root") else Path(".")
        path = Path(ann) if Path(ann).is_absolute() else root / ann
        return category_meta(_annotation_data(path), path, args.get("category"), args.get("flip_pairs"),
                             args.get("sigmas"))

    @classmethod
    def num_keypoints_of(cls, args: Mapping[str, Any]) -> int:
        """K of constructor arguments ``args`` before the module exists: the CLI sizes the model with it."""
        return cls.resolve_meta(args).num_keypoints

    @property
    def num_keypoints(self) -> int:  # type: ignore[override]
        return self.meta.num_keypoints

    @property
    def keypoint_names(self) -> tuple[str, ...]:  # type: ignore[override]
        return self.meta.names

    @property
    def flip_pairs(self) -> tuple[tuple[int, int], ...]:  # type: ignore[override]
        return self.meta.flip_pairs

    @property
    def skeleton(self) -> tuple[tuple[int, int], ...]:  # type: ignore[override]
        return self.meta.skeleton

    @property
    def category_id(self) -> int:  # type: ignore[override]
        return self.meta.category_id

    @property
    def category_name(self) -> str:  # type: ignore[override]
        return self.meta.category or f"category {self.meta.category_id}"

    # ---------------------------------------------------------------- files

    def paths(self, stage: str) -> tuple[Path, Path, Path | None]:
        """(annotation json, image folder, detection file or None) of stage "train" | "val" | "test"."""
        _, ann_file, image_dir, detection_file = self.splits[stage]
        if ann_file is None:
            raise ValueError(f"no annotation json for stage {stage!r}: pass --data.{stage}_ann_file (a COCO keypoint "
                             f"json of category {self.category_name!r}) and --data.{stage}_image_dir")
        ann = self._resolve(ann_file)
        images = self._resolve(image_dir) if image_dir is not None else ann.parent
        return ann, images, self._resolve(detection_file)

    def build_dataset(self, stage: str) -> COCOKeypoints:
        ann, images, _ = self.paths(stage)
        if not ann.is_file():
            raise FileNotFoundError(f"--data.{stage}_ann_file {ann} not found; give the path of the COCO keypoint "
                                    "json (relative paths are resolved against --data.data_root, default: here)")
        if not images.is_dir():
            raise FileNotFoundError(f"--data.{stage}_image_dir {images} is not a folder; give the folder that the "
                                    "json's file_name entries are relative to")
        found = category_meta(_annotation_data(ann), ann, self.meta.category_id, self.meta.flip_pairs,
                              self.meta.sigmas)
        if found.names != self.meta.names:
            raise ValueError(f"{ann}: category {found.category!r} names the keypoints {list(found.names)}, but this "
                             f"run's are {list(self.meta.names)} (from the first json or the checkpoint); every "
                             "stage must use the same keypoints in the same order")
        return super().build_dataset(stage)

    def json_image_dirs(self, path: Path) -> list[Path]:
        """Where ``predict --input X.json`` looks for the json's images: beside it, its ``images/`` folder, then
        the image folder of the stage that was given this json."""
        given = [self._resolve(image_dir) for _, ann_file, image_dir, _ in self.splits.values()
                 if ann_file is not None and image_dir is not None and self._resolve(ann_file).resolve() == path.resolve()]
        return [path.parent, path.parent / "images", *given]

    def references(self, stage: str) -> dict[str, object]:
        """The stage's json, its name, and the category's id and OKS sigmas, for the COCO evaluator."""
        return {**super().references(stage), "category_id": self.meta.category_id, "sigmas": list(self.meta.sigmas)}
