"""``sampling-argmax compare``: the paper's six methods on one task, same model, budget and seeds.

Every run is built by :class:`~sampling_argmax.training.cli.SamplingArgmaxCLI` from the task's YAML
(data + model + trainer; the built-in synthetic 2D task when no ``--config`` is given) with only the
method and the seed varied, then trained (fit) and evaluated on the test split with its final weights.
The report folder gets ``table.md``/``table.csv`` (rows: metrics, columns: methods, mean ± std over
seeds), ``runs.csv`` (one row per run), ``maps.png`` (learned probability maps of every method on
the same inputs), ``predictions.png`` and ``calibration.png`` (error against confidence, all seeds);
each run's checkpoints and logs are in ``runs/<method>/seed<s>``.

Examples::

    sampling-argmax compare                                   # synthetic 2D, 6 methods, seed 0
    sampling-argmax compare --seeds 0 1 2 --methods soft samp_tri
    sampling-argmax compare --config configs/mtfl.yaml --out reports/mtfl --trainer.max_epochs 3
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import shutil
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sampling_argmax.methods import PAPER_METHODS, paper_method

__all__ = ["compare_main", "method_config", "run_one"]

LABELS = {
    "mean_error": "mean error (px) ↓",
    "pck": "PCK ↑",
    "calibration": "calibration (Pearson) ↑",
    "fit_time_s": "train time (s)",
}


def method_config(name: str, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
    """The LightningCLI ``class_path`` config of a paper method (as recorded in checkpoints).

    ``overrides`` replace constructor arguments, e.g. ``{"num_samples": 1}`` or
    ``{"schedule": {"class_path": "sampling_argmax.modules.ConstantTemperature", "init_args": {"tau": 0.5}}}``.
    """
    import inspect

    from sampling_argmax import methods

    method = paper_method(name)  # validates the name
    # the paper's settings live in one table in methods.py; reuse it so they are stated once
    cls, defaults = methods._PAPER_DEFAULTS[name]
    if type(method) is not cls:
        raise ValueError(f"paper_method({name!r}) built {type(method).__name__}, expected {cls.__name__}")
    overrides = dict(overrides or {})
    valid = [k for k in inspect.signature(cls.__init__).parameters if k != "self"]
    unknown = sorted(set(overrides) - set(valid))
    if unknown:
        raise ValueError(
            f"--method_args {unknown} are not arguments of {cls.__name__} ({name}); valid ones are {valid}; "
            "restrict --methods to the methods that have them"
        )
    return {"class_path": f"{cls.__module__}.{cls.__name__}", "init_args": {**defaults, **overrides}}


def _is_rank_zero() -> bool:
    """Under DDP every rank re-runs this command (Lightning's launcher); only rank 0 writes the report."""
    from lightning.fabric.utilities.rank_zero import rank_zero_only

    return getattr(rank_zero_only, "rank", 0) == 0


def _quiet() -> None:
    """One line per run is the progress report; Lightning's banners would drown it."""
    for name in ("lightning.pytorch", "lightning.fabric", "lightning"):
        logging.getLogger(name).setLevel(logging.ERROR)
    for message in (".*does not have many workers.*", ".*smaller than the logging interval.*",
                    ".*LeafSpec.*", ".*exists and is not empty.*", ".*sync_dist.*",
                    ".*LightningCLI's args parameter.*"):
        warnings.filterwarnings("ignore", message=message)


def build_cli(config: Sequence[Path], overrides: Sequence[str], method: str, seed: int, root: Path,
              progress: bool, method_args: dict[str, Any] | None = None):
    from sampling_argmax.training.cli import SamplingArgmaxCLI

    args: list[str] = []
    for path in config:
        args += ["--config", str(path)]
    args += list(overrides)
    args += [
        "--model.method", json.dumps(method_config(method, method_args)),
        "--seed", str(seed),
        "--trainer.default_root_dir", str(root),
        "--trainer.enable_progress_bar", str(progress).lower(),
        "--trainer.enable_model_summary", "false",
    ]
    return SamplingArgmaxCLI(args=args, run=False)


def run_one(config: Sequence[Path], overrides: Sequence[str], method: str, seed: int, root: Path,
            progress: bool = False, resume: bool = False, num_show: int = 4,
            method_args: dict[str, Any] | None = None) -> tuple[dict[str, Any], Any, Any]:
    """Train and test one (method, seed).

    Returns (result row, map snapshot of the test inputs or None, calibration points: per test instance
    (confidence, error in cells)).
    """
    from sampling_argmax.training.report import calibration_points, snapshot_maps

    if not resume and _is_rank_zero() and (root / "checkpoints").exists():
        shutil.rmtree(root / "checkpoints")  # a fresh run must not resume or mix with an old one
    cli = build_cli(config, overrides, method, seed, root, progress, method_args)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path="last" if resume else None)
    fit_time = time.perf_counter() - start
    if resume:  # this call timed only the rest of the run: keep a finished run's recorded time, else unknown
        recorded = root / "result.json"
        fit_time = json.loads(recorded.read_text()).get("fit_time_s", math.nan) if recorded.is_file() else math.nan
    cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    metrics = {k.removeprefix("test/"): float(v) for k, v in cli.trainer.callback_metrics.items()
               if k.startswith("test/")}
    row = {"method": method, "seed": seed, **metrics, "fit_time_s": fit_time,
           "steps": cli.trainer.global_step, "task": getattr(cli.datamodule, "task", type(cli.datamodule).__name__)}
    # a pool of inputs; the figures show typical ones and the hardest (largest median error over methods)
    show = num_show and cli.trainer.is_global_zero
    snapshot = snapshot_maps(cli.model, cli.datamodule, max(64, num_show), split="test") if show else None
    return row, snapshot, calibration_points(cli.model.last_outputs)


def compare_main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        prog="sampling-argmax compare",
        description="Train and evaluate the paper's six methods on one task (same model, budget, seeds); "
        "any other --key value (e.g. --trainer.max_epochs 3, --data.init_args.batch_size 16) is passed to every run.",
    )
    parser.add_argument("--config", type=Path, action="append", default=[],
                        help="task YAML (data + model + trainer); default: the built-in synthetic 2D task")
    parser.add_argument("--methods", nargs="+", default=list(PAPER_METHODS), metavar="NAME",
                        help=f"subset of {' '.join(PAPER_METHODS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--out", type=Path, default=None, help="report folder (default reports/<task>)")
    parser.add_argument("--method_args", type=json.loads, default=None, metavar="JSON",
                        help='constructor overrides for every compared method, e.g. \'{"num_samples": 1}\'')
    parser.add_argument("--num_show", type=int, default=6, help="inputs shown in the figures (0 = no figures)")
    parser.add_argument("--progress", action="store_true", help="show Lightning's progress bar inside each run")
    parser.add_argument("--resume", action="store_true",
                        help="continue interrupted runs from their last.ckpt (finished ones are only re-tested)")
    args, overrides = parser.parse_known_args(argv)
    unknown = [m for m in args.methods if m not in PAPER_METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {' '.join(PAPER_METHODS)}")
    for path in args.config:
        if not path.is_file():
            parser.error(f"--config {path} does not exist")
    if any(o.startswith("--model.method") or o.startswith("--seed") for o in overrides):
        parser.error("compare varies the method and the seed itself; use --methods, --method_args and --seeds")
    for name in args.methods:
        try:
            method_config(name, args.method_args)
        except ValueError as error:
            parser.error(str(error))
    _quiet()
    from tqdm.auto import tqdm

    from sampling_argmax.training.report import plot_calibration, plot_maps, plot_predictions, write_table

    out = args.out
    rows: list[dict[str, Any]] = []
    snapshots = []
    points: dict[str, list] = {}
    jobs = [(m, s) for s in args.seeds for m in args.methods]
    zero = _is_rank_zero()
    bar = tqdm(jobs, desc="compare", unit="run", dynamic_ncols=True, disable=not zero)
    for method, seed in bar:
        bar.set_postfix_str(f"{method} seed {seed}")
        if out is None:
            out = Path("reports") / _task_name(args.config, overrides)
        root = out / "runs" / method / f"seed{seed}"
        show = args.num_show if seed == args.seeds[0] else 0
        # with --resume a finished run restores its last checkpoint, trains no further and is re-tested
        row, snapshot, calibration = run_one(args.config, overrides, method, seed, root, args.progress,
                                             args.resume, show, args.method_args)
        rows.append(row)
        points.setdefault(method, []).append(calibration)
        if snapshot is not None:
            snapshots.append(snapshot)
        zero = _is_rank_zero()  # known for sure once the first run has set up its strategy
        if zero:
            (root / "result.json").write_text(json.dumps(row, indent=1))
            shown = ", ".join(f"{k} {row[k]:.3f}" for k in row if k not in ("method", "seed", "task", "steps", "num_samples"))
            bar.write(f"{method:>9} seed {seed}: {shown}")
    if not zero:
        return rows
    metrics = [k for k in rows[0] if k not in ("method", "seed", "task", "steps", "num_samples")]
    header = (f"Task: {rows[0].get('task', '?')}; seeds {' '.join(map(str, args.seeds))}; "
              f"mean ± std over seeds; test split, final weights."
              + (f" Method overrides: {json.dumps(args.method_args)}." if args.method_args else "") + "\n\n")
    markdown = write_table(out, rows, args.methods, metrics, LABELS, header)
    if snapshots:
        plot_maps(snapshots, out / "maps.png", args.num_show)
        plot_predictions(snapshots, out / "predictions.png", args.num_show)
    plot_calibration(points, out / "calibration.png")
    print()
    print(markdown)
    figures = ", maps.png, predictions.png" if snapshots else ""
    print(f"report: {out}/ (table.md, table.csv, runs.csv, calibration.png{figures})")
    return rows


def _task_name(config: Sequence[Path], overrides: Sequence[str]) -> str:
    """reports/<task>: from the config's path (configs/mtfl/cpu.yaml -> mtfl_cpu), or the built-in task's name."""
    if config:
        path = config[-1]
        return path.stem if path.parent.name in ("configs", "") else f"{path.parent.name}_{path.stem}"
    from sampling_argmax.training.cli import SamplingArgmaxCLI

    cli = SamplingArgmaxCLI(args=[*overrides, "--trainer.logger", "false"], run=False)
    return getattr(cli.datamodule, "task", None) or type(cli.datamodule).__name__.removesuffix("DataModule").lower()
