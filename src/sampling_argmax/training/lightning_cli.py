"""The LightningCLI of ``sampling-argmax fit | validate | test | predict`` (the dispatcher is in ``cli.py``).

A run is a task config (data module + model + evaluator + trainer) and a method chosen by name:
``--method NAME`` (one of the paper's six, or a learned-basis method) with ``--method_args`` for constructor overrides; a config
states its default ``method:`` and the task's ``method_args`` (e.g. a Gumbel form for every sampling
method). Runs live in ``<default_root_dir>`` = ``runs/<task>/<method>`` unless set: ``checkpoints/``
(:mod:`~sampling_argmax.training.checkpoints`), ``logs/version_N/`` (TensorBoard + CSV + the resolved
``config.yaml``) and ``run.lock`` while a process works there.

``validate``/``test``/``predict`` evaluate the weights of ``--ckpt_path`` (a file, or ``last`` = the run
folder's ``checkpoints/last.ckpt``) with the model and method recorded in that checkpoint, and say so; a
``--method`` on the command line that contradicts the checkpoint is refused. ``predict`` (the task's test
split) writes ``<default_root_dir>/predictions/predictions.{json,csv}``, one row per sample; ``predict
--input PATH`` (your own files) does not come here (:mod:`sampling_argmax.inference`).
"""

from __future__ import annotations

import importlib
import inspect
import sys
from pathlib import Path
from typing import Any

from lightning.fabric.utilities.exceptions import MisconfigurationException
from lightning.fabric.utilities.rank_zero import rank_zero_only
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, TensorBoardLogger

from sampling_argmax._io import file_sha256, write_rows
from sampling_argmax.methods import METHODS, method_config, paper_method
from sampling_argmax.training.checkpoints import (
    LAST,
    RunLock,
    check_checkpoint_folder,
    check_output_folder,
    checkpoint_callbacks,
    contradictions,
    plain_config,
    read_checkpoint,
    rebuild,
)
from sampling_argmax.training.module import LocalizationModule

__all__ = ["SamplingArgmaxCLI", "DEFAULTS", "default_root_dir", "task_method_config"]

#: Built-in defaults: the synthetic 2D task (configs/synthetic.yaml spells out the same values).
#: They apply only when no ``--config`` is given, so a task's YAML never inherits the synthetic
#: task's trainer limits or model (e.g. 8 batches an epoch, 1 input channel).
DEFAULTS: dict[str, Any] = {
    "data": {"class_path": "sampling_argmax.data.synthetic.SyntheticDataModule", "init_args": {}},
    "model.model": {
        "class_path": "sampling_argmax.models.SmallHeatmapNet",
        "init_args": {"num_keypoints": 3, "dims": 2, "in_channels": 1, "width": 16},
    },
    "model.evaluator": {"class_path": "sampling_argmax.metrics.localization.KeypointEvaluator",
                        "init_args": {"pck_threshold": 2.0}},
    "method": "samp_tri",
    "model.lr": 2e-3,
    "model.milestones": [24],
    # 30 short epochs of 8 batches: the paper's per-epoch τ schedule anneals over the run as on MTFL
    "trainer.max_epochs": 30,
    "trainer.limit_train_batches": 8,
    "trainer.check_val_every_n_epoch": 5,
    "trainer.log_every_n_steps": 8,
    "trainer.num_sanity_val_steps": 0,
}

_EVALUATING = ("validate", "test", "predict")

#: Settings a resumed run may change (they do not change what is learned): where and how the data is
#: read, how the model is evaluated, and the divergence guard's limits. Any other method, model or data
#: setting that differs from the checkpoint's record is refused (``SamplingArgmaxCLI.check_resume``).
RESUME_MAY_CHANGE = frozenset({
    "_instantiator", "num_workers", "data_root", "mpii_root", "cache_dir", "pin_memory", "persistent_workers",
    "evaluator", "flip_test", "max_weight_growth", "max_logit_range",
})


def _described(method: Any) -> str:
    """A recorded method config as ``ClassName(arg=value, ...)``."""
    method = plain_config(method)
    if not isinstance(method, dict) or "class_path" not in method:
        return repr(method)
    args = ", ".join(f"{k}={v!r}" for k, v in (method.get("init_args") or {}).items())
    return f"{str(method['class_path']).rsplit('.', 1)[-1]}({args})"


def available_accelerators() -> list[str]:
    """The Lightning accelerators that can run here (always 'cpu')."""
    from lightning.pytorch.accelerators import AcceleratorRegistry

    found = []
    for name in ("cpu", "cuda", "mps"):
        try:
            if AcceleratorRegistry.get(name).is_available():
                found.append(name)
        except Exception:  # noqa: BLE001 - an accelerator that cannot even be asked is not available
            continue
    return found


def task_method_config(name: str, method_args: dict[str, Any] | None = None) -> dict[str, Any]:
    """The ``class_path`` config of paper method ``name`` under a task's ``method_args``.

    ``method_args`` holds constructor overrides. A plain key applies to every method whose constructor
    has that argument (``{"gumbel": "authors"}`` sets the Gumbel form of the three sampling methods and
    leaves the soft-argmax ones alone); a key that is a method name holds overrides for that method only
    (``{"soft_dr": {"regularizer_weight": 0.01}}``). A key that no method has is an error.

    >>> task_method_config("soft", {"gumbel": "authors"})["class_path"]
    'sampling_argmax.methods.SoftArgmaxMethod'
    """
    if name not in METHODS:
        raise ValueError(f"--method {name!r} is not one of {', '.join(METHODS)}")
    args = dict(method_args or {})
    accepted = {m: set(inspect.signature(type(paper_method(m)).__init__).parameters) - {"self"} for m in METHODS}
    known = set().union(*accepted.values())
    for key, value in args.items():
        if key in METHODS:
            if not isinstance(value, dict):
                raise ValueError(f"--method_args {key}: {value!r} must be a dict of {key}'s constructor arguments")
            continue
        if key not in known:
            raise ValueError(
                f"--method_args {key!r} is not an argument of any method; valid ones are {sorted(known)}, or a "
                f"method name ({', '.join(METHODS)}) holding that method's own overrides"
            )

    def overrides_of(method: str) -> dict[str, Any]:
        own = {k: v for k, v in args.items() if k not in METHODS and k in accepted[method]}
        return {**own, **args.get(method, {})}

    # every value is checked by the method(s) it reaches, not only the method of this run: a bad Gumbel
    # form or an unknown key under another method's name is an error, never silently ignored
    for other in METHODS:
        if other != name and (overrides := overrides_of(other)):
            try:
                method_config(other, overrides)
            except ValueError as error:
                raise ValueError(f"--method_args, as it applies to {other}: {error}") from None
    return method_config(name, overrides_of(name))


def default_root_dir(datamodule: Any, method: Any) -> str:
    """``runs/<task>/<method>``: one folder per task and method, so ``--resume`` finds its own run."""
    task = getattr(datamodule, "task", "") or type(datamodule).__name__.removesuffix("DataModule").lower()
    return str(Path("runs") / task / getattr(method, "name", type(method).__name__))


def _given(argv: list[str], *options: str) -> bool:
    return any(str(a) == o or str(a).startswith((o + "=", o + ".")) for a in argv for o in options)


class SamplingArgmaxCLI(LightningCLI):
    """LightningCLI with ``--method``, ``--seed``, ``--resume``, crash-safe checkpoints and a run lock."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        argv = kwargs.get("args")  # always passed by keyword here
        argv = sys.argv[1:] if argv is None else argv
        self.argv = [] if isinstance(argv, dict) else [str(a) for a in argv]
        self.builtin_defaults = not (isinstance(argv, dict) or _given(self.argv, "--config", "-c"))
        kwargs.setdefault("model_class", LocalizationModule)
        kwargs.setdefault("subclass_mode_data", True)
        kwargs.setdefault("seed_everything_default", 0)
        kwargs.setdefault("auto_configure_optimizers", False)  # Adam + MultiStepLR live in the module
        kwargs.setdefault("save_config_kwargs", {"overwrite": True})
        super().__init__(*args, **kwargs)

    # ---------------------------------------------------------------- arguments

    def add_default_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--seed_everything", "--seed", type=bool | int, default=self.seed_everything_default,
            help="Seed of seed_everything (model init, sampling noise, shuffling); True = random.",
        )

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        parser.add_argument(
            "--method", type=str | None, default=None,
            help=f"The method, by name: {', '.join(METHODS)} (or give --model.method as a class_path).",
        )
        parser.add_argument(
            "--method_args", type=dict | None, default=None,
            help='Method constructor overrides as JSON, e.g. \'{"num_samples": 10}\'; a plain key applies to every '
            'method that has the argument, a method-name key to that method only: \'{"soft_dr": {...}}\'.',
        )
        parser.add_argument(
            "--resume", type=bool, default=False,
            help="fit: continue from <default_root_dir>/checkpoints/last.ckpt when it exists (same as --ckpt_path last).",
        )
        parser.add_argument(
            "--overwrite", type=bool, default=False,
            help="fit: delete the checkpoints an earlier run left in <default_root_dir>/checkpoints and train from "
            "scratch (without it, such a folder is refused unless --resume continues that run).",
        )
        parser.add_argument(
            "--checkpoint_every_n_steps", type=int, default=50,
            help="Also write last.ckpt every N training steps, so a killed run loses at most N steps (0 = epochs only).",
        )
        parser.add_argument(
            "--pretrained", type=str | None, default=None,
            help="Local torchvision ResNet state dict for the backbone (the paper's ImageNet init), e.g. "
            "resnet18-f37072fd.pth; same as --model.model.init_args.pretrained. Nothing is ever downloaded.",
        )
        parser.add_argument(
            "--model.backbone", type=str | None, default=None,
            help="The backbone by name: resnet18|resnet34|resnet50|resnet101|resnet152 (torchvision) or a timm model "
            "with features_only (pip install sampling-argmax[timm]); same as --model.model.init_args.backbone.",
        )
        parser.add_argument(
            "--model.pretrained", type=str | None, default=None,
            help="Local state dict file of that backbone (torchvision's or timm's); same as --pretrained.",
        )
        if self.builtin_defaults:
            parser.set_defaults(DEFAULTS)

    def _parse_ckpt_path(self) -> None:
        """Build the method from ``--method``; checkpoints are read later, after the classes exist.

        (LightningCLI would overlay a checkpoint's hyperparameters on the config here, silently replacing a
        method given on the command line; :meth:`_evaluated_checkpoint` checks and says what is used instead.)
        """
        config = self._section()
        name, model_method = config.get("method"), config.get("model.method")
        if _given(self.argv, "--model.method") and not _given(self.argv, "--method"):
            name = config["method"] = None  # a method object on the command line replaces the config's name
        if name is None and model_method is None:
            raise ValueError("no method: pass --method NAME (one of " + ", ".join(METHODS) + ") or put "
                             "'method: NAME' in the config")
        if name is not None and model_method is not None:
            raise ValueError(
                f"both --method {name} and --model.method ({model_method.get('class_path')}) are given; keep one "
                "(--method NAME with --method_args for overrides)"
            )
        if name is not None:
            built = task_method_config(name, config.get("method_args"))
            update = {"model": {"method": built}}
            self.config = self.parser.parse_object(
                {self.config["subcommand"]: update} if self.config.get("subcommand") else update, self.config
            )
        elif config.get("method_args"):
            raise ValueError("--method_args needs --method NAME (with --model.method, set its init_args directly)")

    def _section(self) -> Any:
        subcommand = self.config.get("subcommand")
        return self.config[subcommand] if subcommand else self.config

    def before_instantiate_classes(self) -> None:
        config = self._section()
        model = config["model.model"]
        self._size_model_to_data(config, model)
        # the shorthands are the CLI's, not LocalizationModule's arguments: moved into the model's init_args
        backbone, path = config["model"].pop("backbone", None), config["model"].pop("pretrained", None)
        given = config.get("pretrained")
        if path is not None and given is not None and path != given:
            raise ValueError(f"--pretrained {given} and --model.pretrained {path} disagree; give one")
        path = path if path is not None else given
        for option, value, key in (("--model.backbone", backbone, "backbone"), ("--pretrained", path, "pretrained")):
            if value is None:
                continue
            if key not in (model.get("init_args") or {}):
                raise ValueError(
                    f"{option} {value}: the model {model.get('class_path')} has no "
                    f"{'pretrained backbone' if key == 'pretrained' else 'backbone argument'}; use "
                    f"sampling_argmax.models.ResNetDeconv (as in configs/mtfl and configs/coco.yaml) or drop {option}"
                )
            if key == "backbone":
                model.init_args.depth = None  # the older spelling of the backbone in the configs
            model.init_args[key] = value

    @staticmethod
    def _size_model_to_data(config: Any, model: Any) -> None:
        """A model whose ``num_keypoints`` is null gets the data's K, for data modules that know K from their files
        before they are built (``num_keypoints_of(init_args)``: the COCO-format json's category, the CSV header)."""
        init_args = model.get("init_args") if hasattr(model, "get") else None
        if init_args is None or "num_keypoints" not in init_args or init_args.get("num_keypoints") is not None:
            return
        data = config.get("data")
        class_path = data.get("class_path") if hasattr(data, "get") else None
        module_name, _, class_name = str(class_path).rpartition(".")
        data_class = getattr(importlib.import_module(module_name), class_name, None) if module_name else None
        count = getattr(data_class, "num_keypoints_of", None)
        if count is None:
            raise ValueError(
                f"--model.model.init_args.num_keypoints is null (= the data's K), but {class_path} does not know its "
                "keypoint count before it is built; give the number"
            )
        args = data.get("init_args")
        args = {} if args is None else args.as_dict() if hasattr(args, "as_dict") else dict(args)
        init_args["num_keypoints"] = int(count(args))

    # ---------------------------------------------------------------- trainer: folder, loggers, checkpoints, lock

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        config = self._get(self.config_init, "trainer", default={})
        root = config.get("default_root_dir") or default_root_dir(self.datamodule, self.model.method)
        check_output_folder(root, "--trainer.default_root_dir")
        check_output_folder(Path(root) / "checkpoints", "the checkpoint folder")
        kwargs["default_root_dir"] = root
        if config.get("logger") in (None, True):
            tensorboard = TensorBoardLogger(root, name="logs")
            # the CSV file goes inside the TensorBoard run folder: one version number per run
            kwargs["logger"] = [tensorboard, CSVLogger(tensorboard.log_dir, name="", version="csv")]
        callbacks = list(config.get("callbacks") or [])
        if config.get("enable_checkpointing", True) is not False and not any(
            isinstance(c, ModelCheckpoint) for c in callbacks
        ):
            every = self._get(self.config, "checkpoint_every_n_steps", 50)
            callbacks += checkpoint_callbacks(Path(root) / "checkpoints", every)
        self.run_lock = RunLock(root)
        kwargs["callbacks"] = [*callbacks, self.run_lock]
        try:
            return super().instantiate_trainer(**kwargs)
        except MisconfigurationException as error:  # e.g. --trainer.accelerator gpu on a machine without one
            raise ValueError(
                f"the trainer options cannot work on this machine: {error} Check --trainer.accelerator, "
                f"--trainer.devices, --trainer.strategy and --trainer.precision (available accelerators: "
                f"{', '.join(available_accelerators())})"
            ) from None

    # ---------------------------------------------------------------- subcommands

    def before_fit(self) -> None:
        # the folder's lock first: a busy folder is named as such, and its checkpoints are read and judged
        # only while no other run can be writing them
        if self.trainer.is_global_zero:
            self.run_lock.acquire("fit")
        try:
            self._prepare_fit()
        except BaseException:
            self.run_lock.teardown(self.trainer, self.model, "fit")
            raise

    def _prepare_fit(self) -> None:
        options = self.config_init["fit"]
        if options.get("resume") and options.get("overwrite"):
            raise ValueError("--resume continues the run in this folder and --overwrite deletes it; choose one")
        if options.get("resume") and options.get("ckpt_path") is None:
            options["ckpt_path"] = "last"
        path = options.get("ckpt_path")
        folder = Path(self.trainer.default_root_dir) / "checkpoints"
        if path == "last":
            last = folder / LAST
            options["ckpt_path"] = path = str(last) if last.is_file() else None  # nothing yet: a fresh run
            if path is None:
                rank_zero_only(print)(f"--resume: no {last} yet, starting a fresh run")
        if path is not None:
            self.check_resume(read_checkpoint(path), path)
        # finished work is never replaced: another run's checkpoints need --resume or --overwrite
        self.run_lock.replace = check_checkpoint_folder(folder, path, bool(options.get("overwrite")))

    def before_validate(self) -> None:
        self._evaluated_checkpoint("validate")

    def before_test(self) -> None:
        self._evaluated_checkpoint("test")

    def before_predict(self) -> None:
        self._evaluated_checkpoint("predict")

    def after_predict(self) -> None:
        """Write the rows of the test split (``predict_step``'s outputs) where the run's files live."""
        batches = self.trainer.predict_loop.predictions or []
        if batches and isinstance(batches[0], list):  # several dataloaders: one list each
            batches = [b for loader in batches for b in loader]
        path = self.config_init["predict"]["ckpt_path"]
        sha = file_sha256(path)
        rows = []
        for batch in batches:
            for index, pred, confidence in zip(batch["index"].tolist(), batch["pred"].double().tolist(),
                                               batch["confidence"].tolist()):
                rows.append({"input": f"test split #{index}", "keypoints": pred, "confidence": confidence,
                             "method": self.model.method.name, "checkpoint_sha256": sha})
        count = self.datamodule.num_keypoints
        names = getattr(self.datamodule, "keypoint_names", None)
        names = list(names) if names is not None and len(names) == count else [f"kp{k}" for k in range(count)]
        world = self.trainer.world_size
        folder = Path(self.trainer.default_root_dir) / "predictions"
        folder = folder if world == 1 else folder / f"rank{self.trainer.global_rank}"  # each rank its own shard
        written = write_rows(rows, folder, names)
        print(f"predict: {len(rows)} rows of the test split -> {', '.join(map(str, written))}")

    def _evaluated_checkpoint(self, subcommand: str) -> None:
        """Resolve ``--ckpt_path``, use the model and method it records, and say which weights are evaluated."""
        options = self.config_init[subcommand]
        path = options.get("ckpt_path")
        if path is None:
            raise ValueError(
                f"{subcommand} needs --ckpt_path: a .ckpt file, or 'last' for {self.trainer.default_root_dir}/"
                f"checkpoints/{LAST}; without one it would score untrained weights"
            )
        if path == "last":
            path = str(Path(self.trainer.default_root_dir) / "checkpoints" / LAST)
            if not Path(path).is_file():
                raise FileNotFoundError(
                    f"--ckpt_path last: {path} does not exist; train first (sampling-argmax fit with the same "
                    "--config and --method) or give the checkpoint file"
                )
        state = read_checkpoint(path)
        self._check_compatible(state, path, resume=False)
        recorded = state.get("hyper_parameters", {})
        if "model" in recorded and "method" in recorded:
            stored = rebuild(lambda: LocalizationModule.load_from_checkpoint(path, map_location="cpu"), path,
                             "the model and method")
            wanted = self.model.method
            if _given(self.argv, "--method", "--model.method") and repr(wanted) != repr(stored.method):
                raise ValueError(
                    f"--method {wanted!r} contradicts the checkpoint {path}, trained with {stored.method!r}; drop "
                    "--method to evaluate it as trained, or give the checkpoint of that method"
                )
            # the weights, the architecture and the method are the checkpoint's; evaluation options the config's
            self.model.model, self.model.method = stored.model, stored.method
        options["ckpt_path"] = path
        rank_zero_only(print)(
            f"{subcommand}: weights {path} (epoch {state.get('epoch', '?')}, step {state.get('global_step', '?')}), "
            f"method {self.model.method.name}"
        )

    def check_resume(self, state: dict[str, Any], path: str | Path) -> None:
        """Refuse to continue a checkpoint as another run: another task or architecture, or method, model or
        data arguments that contradict the ones it recorded (each named with both values)."""
        found = []
        recorded = state.get("hyper_parameters")
        if isinstance(recorded, dict) and "model" in recorded:
            current = dict(self.model.hparams)
            found += [(f"--model.{k}", old, new) for k, old, new in
                      contradictions(recorded, current, RESUME_MAY_CHANGE | {"method"})]
            if "method" in current and contradictions(recorded.get("method"), current["method"]):
                found.insert(0, ("--method", _described(recorded.get("method")), _described(current["method"])))
        recorded = state.get("datamodule_hyper_parameters")
        if isinstance(recorded, dict) and self.datamodule is not None:
            found += [(f"--data.{'init_args.' if not k.startswith('_') else ''}{k}", old, new)
                      for k, old, new in contradictions(recorded, dict(self.datamodule.hparams), RESUME_MAY_CHANGE)]
        if found:
            listed = "; ".join(f"{key}: the checkpoint has {old if key == '--method' else repr(old)}, this command "
                               f"{new if key == '--method' else repr(new)}" for key, old, new in found[:4])
            more = f" (and {len(found) - 4} more)" if len(found) > 4 else ""
            raise ValueError(
                f"cannot resume {path}: this command contradicts the run it continues: {listed}{more}. Resume with "
                "the arguments it was trained with (its logs/version_N/config.yaml), or start a new run "
                "(another --trainer.default_root_dir, or --overwrite true)"
            )
        self._check_compatible(state, str(path), resume=True)  # what the record cannot show (weights' shapes)

    def _check_compatible(self, state: dict[str, Any], path: str, resume: bool) -> None:
        """Refuse a checkpoint of another task or architecture with a clear message."""
        recorded = state.get("datamodule_hyper_parameters", {}).get("_class_path")
        current = f"{type(self.datamodule).__module__}.{type(self.datamodule).__name__}"
        if recorded and recorded != current:
            raise ValueError(f"--ckpt_path {path} was trained on {recorded}, not on this config's {current}")
        if not resume:
            return
        weights = {k.removeprefix("model."): v for k, v in state["state_dict"].items() if k.startswith("model.")}
        own = self.model.model.state_dict()
        wrong = [k for k in own if k not in weights or tuple(weights[k].shape) != tuple(own[k].shape)]
        if wrong or set(weights) - set(own):
            raise ValueError(
                f"--ckpt_path {path} holds another architecture than this config's model (first mismatch: "
                f"{(wrong or sorted(set(weights) - set(own)))[0]}); resume with the config it was trained with"
            )
