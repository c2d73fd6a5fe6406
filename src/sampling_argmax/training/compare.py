"""``sampling-argmax compare``: the paper's six methods on one task, same model, budget and seeds.

Every run is built by :class:`~sampling_argmax.cli.SamplingArgmaxCLI` from the task's YAML
(data + model + trainer; the built-in synthetic 2D task when no ``--config`` is given) with only the
method and the seed varied, then trained (fit) and evaluated on the test split with its final weights.
The report folder gets ``table.md``/``table.csv`` (rows: metrics, columns: methods, mean ± std over
seeds), ``runs.csv`` (one row per run), ``maps.png`` (learned probability maps of every method on
the same inputs), ``predictions.png`` and ``calibration.png`` (error against confidence, all seeds);
each run's checkpoints and logs are in ``runs/<method>/seed<s>``, with what the report needs of it:
``result.json`` (its row), ``calibration.npz`` and, for a method's first seed, ``maps.npz``.

The report is rebuilt from **every finished run in the folder** (:func:`collect_report`), not only the runs
of this invocation: ``compare --methods soft_dr --out rep`` after ``compare --methods soft --out rep``
gives a table of both. Runs of another task or split in the same folder are refused.

Every method is built as ``sampling-argmax fit --method NAME`` builds it, so a task config's
``method_args`` (e.g. a Gumbel form) hold here too; ``--method_args`` adds to them. A run folder that
already holds checkpoints is never deleted: ``--resume`` continues (or only re-tests) it, ``--overwrite``
trains it again from scratch, and without either the command stops before training anything.

Examples::

    sampling-argmax compare                                   # synthetic 2D, 6 methods, seed 0
    sampling-argmax compare --seeds 0 1 2 --methods soft samp_tri
    sampling-argmax compare --config configs/mtfl/cpu.yaml --out reports/mtfl --trainer.max_epochs 3
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

import numpy as np
import yaml

from sampling_argmax.methods import METHODS, PAPER_METHODS, NotDefinedOnPointsError
from sampling_argmax.training.checkpoints import (
    LAST,
    check_output_folder,
    read_checkpoint,
)
from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI, task_method_config
from sampling_argmax.training.report import (
    MapSnapshot,
    calibration_points,
    plot_calibration,
    plot_maps,
    plot_predictions,
    snapshot_maps,
    write_table,
)

__all__ = ["collect_report", "compare_main", "run_one"]

#: Columns of a run's row that are not metrics.
NOT_METRICS = ("method", "seed", "task", "steps", "num_samples", "split", "undefined", "method_args")

LABELS = {
    "mean_error": "mean error (px) ↓",
    "pck": "PCK ↑",
    "calibration": "calibration (Pearson) ↑",
    "fit_time_s": "train time (s)",
}


def config_method_args(config: Sequence[Path]) -> dict[str, Any]:
    """The ``method_args`` of the task configs (later files win), as ``fit --config ...`` would see them."""
    merged: dict[str, Any] = {}
    for path in config:
        data = yaml.safe_load(path.read_text()) or {}
        merged.update(data.get("method_args") or {})
    return merged


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
              progress: bool, method_args: dict[str, Any] | None = None) -> SamplingArgmaxCLI:
    args: list[str] = []
    for path in config:
        args += ["--config", str(path)]
    args += list(overrides)
    args += ["--method", method]
    if method_args:
        args += ["--method_args", json.dumps(method_args)]
    args += [
        "--seed", str(seed),
        "--trainer.default_root_dir", str(root),
        "--trainer.enable_progress_bar", str(progress).lower(),
        "--trainer.enable_model_summary", "false",
    ]
    return SamplingArgmaxCLI(args=args, run=False)


def run_one(config: Sequence[Path], overrides: Sequence[str], method: str, seed: int, root: Path,
            progress: bool = False, resume: bool = False, num_show: int = 4,
            method_args: dict[str, Any] | None = None) -> tuple[dict[str, Any], Any, Any]:
    """Train and test one (method, seed) in ``root``.

    Returns (result row, map snapshot of the test inputs or None, calibration points: per test instance
    (confidence, error in cells)).
    """
    last = root / "checkpoints" / LAST
    resumed = resume and last.is_file()
    cli = build_cli(config, overrides, method, seed, root, progress, method_args)
    if resumed:  # the same run, or an error naming what this command changes
        cli.check_resume(read_checkpoint(last), last)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule, ckpt_path=str(last) if resumed else None)
    fit_time = time.perf_counter() - start
    if resumed:  # this call timed only the rest of the run: keep a finished run's recorded time, else unknown
        recorded = root / "result.json"
        fit_time = json.loads(recorded.read_text()).get("fit_time_s", math.nan) if recorded.is_file() else math.nan
    cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)
    metrics = {k.removeprefix("test/"): float(v) for k, v in cli.trainer.callback_metrics.items()
               if k.startswith("test/")}
    references = cli.datamodule.references("test") if hasattr(cli.datamodule, "references") else {}
    row = {"method": method, "seed": seed, **metrics, "fit_time_s": fit_time, "steps": cli.trainer.global_step,
           "task": getattr(cli.datamodule, "task", type(cli.datamodule).__name__),
           "split": references.get("split", "test split")}
    if cli.model.undefined_metrics:
        row["undefined"] = dict(cli.model.undefined_metrics)
    if method_args:
        row["method_args"] = method_args
    # a pool of inputs; the figures show typical ones and the hardest (largest median error over methods)
    show = num_show and cli.trainer.is_global_zero
    snapshot = snapshot_maps(cli.model, cli.datamodule, max(64, num_show), split="test") if show else None
    return row, snapshot, calibration_points(cli.model.last_outputs)


def _prepare_folders(out: Path, jobs: Sequence[tuple[str, int]], resume: bool, overwrite: bool) -> None:
    """Refuse to touch finished work unless asked: existing checkpoints need --resume or --overwrite."""
    check_output_folder(out, "--out")
    taken = [out / "runs" / m / f"seed{s}" for m, s in jobs if any((out / "runs" / m / f"seed{s}" / "checkpoints").glob("*.ckpt"))]
    if taken and not (resume or overwrite):
        raise SystemExit(
            f"sampling-argmax compare: error: {len(taken)} run(s) already have checkpoints (e.g. {taken[0]}); "
            "pass --resume to continue or re-test them, --overwrite to train them again from scratch, or "
            "another --out"
        )
    if overwrite and _is_rank_zero():
        for root in taken:
            shutil.rmtree(root / "checkpoints")  # asked for explicitly: retrain from scratch
            for name in ("result.json", "calibration.npz", "maps.npz"):  # nothing of the old run stays in the report
                (root / name).unlink(missing_ok=True)


def compare_main(argv: Sequence[str] | None = None) -> list[dict[str, Any]]:
    parser = argparse.ArgumentParser(
        prog="sampling-argmax compare",
        description="Train and evaluate the paper's six methods on one task (same model, budget, seeds); "
        "any other --key value (e.g. --trainer.max_epochs 3, --data.init_args.batch_size 16) is passed to every run.",
    )
    parser.add_argument("--config", type=Path, action="append", default=[],
                        help="task YAML (data + model + trainer); default: the built-in synthetic 2D task")
    parser.add_argument("--methods", nargs="+", default=list(PAPER_METHODS), metavar="NAME",
                        help=f"default: the paper's six; any of {' '.join(METHODS)}")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--out", type=Path, default=None, help="report folder (default reports/<task>)")
    parser.add_argument("--method_args", type=json.loads, default=None, metavar="JSON",
                        help='constructor overrides for every compared method, e.g. \'{"num_samples": 1}\'')
    parser.add_argument("--num_show", type=int, default=6, help="inputs shown in the figures (0 = no figures)")
    parser.add_argument("--progress", action="store_true", help="show Lightning's progress bar inside each run")
    parser.add_argument("--resume", action="store_true",
                        help="continue interrupted runs from their last.ckpt (finished ones are only re-tested)")
    parser.add_argument("--overwrite", action="store_true",
                        help="delete the checkpoints of runs that have them and train those runs again")
    args, overrides = parser.parse_known_args(argv)
    unknown = [m for m in args.methods if m not in METHODS]
    if unknown:
        parser.error(f"unknown method(s) {unknown}; choose from {' '.join(METHODS)}")
    for name, values in (("--methods", args.methods), ("--seeds", args.seeds)):
        if len(set(values)) != len(values):
            parser.error(f"{name} lists {values} with repeats; each run needs its own folder")
    if args.num_show < 0:
        parser.error(f"--num_show {args.num_show} must be >= 0 (0 = no figures)")
    if args.resume and args.overwrite:
        parser.error("--resume continues existing runs and --overwrite deletes them; choose one")
    for path in args.config:
        if not path.is_file():
            parser.error(f"--config {path} does not exist")
    if any(o.startswith(("--model.method", "--method", "--seed")) for o in overrides):
        parser.error("compare varies the method and the seed itself; use --methods, --method_args and --seeds")
    method_args = {**config_method_args(args.config), **(args.method_args or {})}
    for name in args.methods:
        try:
            task_method_config(name, method_args)
        except ValueError as error:
            parser.error(str(error))
    _quiet()
    from tqdm.auto import tqdm

    out = args.out or Path("reports") / _task_name(args.config, overrides)
    jobs = [(m, s) for s in args.seeds for m in args.methods]
    _prepare_folders(out, jobs, args.resume, args.overwrite)
    rows: list[dict[str, Any]] = []
    undefined: set[str] = set()  # methods that need a grid, on a point-set task
    zero = _is_rank_zero()
    bar = tqdm(jobs, desc="compare", unit="run", dynamic_ncols=True, disable=not zero)
    for method, seed in bar:
        bar.set_postfix_str(f"{method} seed {seed}")
        root = out / "runs" / method / f"seed{seed}"
        show = args.num_show if seed == args.seeds[0] else 0
        # with --resume a finished run restores its last checkpoint, trains no further and is re-tested
        try:
            row, snapshot, calibration = run_one(args.config, overrides, method, seed, root, args.progress,
                                                 args.resume, show, method_args)
        except NotDefinedOnPointsError as error:  # fails at its first step, before anything is saved
            undefined.add(method)
            bar.write(f"{method:>9} seed {seed}: not defined on this task ({error})")
            continue
        rows.append(row)
        zero = _is_rank_zero()  # known for sure once the first run has set up its strategy
        if zero:
            save_run(root, row, snapshot, calibration)
            shown = ", ".join(f"{k} {row[k]:.3f}" for k in row if k not in NOT_METRICS)
            bar.write(f"{method:>9} seed {seed}: {shown}")
    if not zero or not rows:
        return rows
    note = (f"Not defined on this task's point sets (a basis that needs a grid cell): "
            f"{', '.join(sorted(undefined))}." if undefined else "")
    _, markdown, written = collect_report(out, args.num_show, note, args.methods)
    print()
    print(markdown)
    print(f"report: {out}/ ({', '.join(written)})")
    return rows


# ---------------------------------------------------------------------------------------------- the report folder


def save_run(root: Path, row: dict[str, Any], snapshot: MapSnapshot | None,
             calibration: tuple[np.ndarray, np.ndarray]) -> None:
    """What the report needs of one run, beside its checkpoints: result.json, calibration.npz, maps.npz."""
    root.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(root / "calibration.npz", confidence=calibration[0], error=calibration[1])
    if snapshot is not None:
        np.savez_compressed(root / "maps.npz", name=snapshot.name, images=snapshot.images, prob=snapshot.prob,
                            pred=snapshot.pred, target=snapshot.target, points=snapshot.points)
    (root / "result.json").write_text(json.dumps(row, indent=1))  # last: a run with result.json is complete


def _load_snapshot(path: Path, method: str) -> MapSnapshot:
    with np.load(path) as data:
        return MapSnapshot(name=method, images=data["images"], prob=data["prob"], pred=data["pred"],
                           target=data["target"], points=bool(data["points"]))


def collect_report(out: Path, num_show: int = 6, note: str = "", methods: Sequence[str] = ()
                   ) -> tuple[list[dict[str, Any]], str, list[str]]:
    """Rebuild the report of a folder from every finished run in it (``runs/<method>/seed<s>/result.json``).

    Writes table.md, table.csv, runs.csv and, from the runs' saved ``maps.npz``/``calibration.npz``,
    maps.png, predictions.png and calibration.png. Methods in the order of
    :data:`~sampling_argmax.methods.METHODS`, seeds ascending. Returns (runs, the Markdown table, the names
    of the files written). ``methods``: columns to show even without a finished run (e.g. a method not
    defined on the task: its cells read "–"). Runs of different tasks or splits are an error naming both;
    runs with checkpoints but no result.json (unfinished) are named in the table's header.
    """
    out = Path(out)
    results = sorted(out.glob("runs/*/seed*/result.json"))
    if not results:
        raise FileNotFoundError(f"{out}: no runs/<method>/seed<s>/result.json; run sampling-argmax compare --out "
                                f"{out} first")
    runs = []
    for path in results:
        try:
            run = json.loads(path.read_text())
        except (OSError, ValueError) as error:
            raise ValueError(f"{path} is not a readable run result ({error}); re-test that run (compare --resume) "
                             "or delete its folder") from None
        if not isinstance(run, dict) or "method" not in run or "seed" not in run:
            raise ValueError(f"{path} is not a run result (no method/seed); re-test that run (compare --resume)")
        runs.append((path, run))
    for key in ("task", "split"):
        values = {run.get(key): path for path, run in runs}
        if len(values) > 1:
            (a, first), (b, second) = list(values.items())[:2]
            raise ValueError(f"{out} mixes runs of different {key}s: {a!r} ({first}) and {b!r} ({second}); one "
                             "report folder holds one task: move one of them to another --out")
    order = {name: i for i, name in enumerate(METHODS)}
    runs.sort(key=lambda item: (order.get(item[1]["method"], len(order)), item[1]["method"], item[1]["seed"]))
    rows = [run for _, run in runs]
    methods = sorted({run["method"] for run in rows} | set(methods), key=lambda m: (order.get(m, len(order)), m))
    metrics = list(dict.fromkeys(k for run in rows for k in run if k not in NOT_METRICS))
    seeds = {m: [run["seed"] for run in rows if run["method"] == m] for m in methods}
    seeds = {m: s for m, s in seeds.items() if s}
    unfinished = sorted(str(folder.relative_to(out)) for folder in out.glob("runs/*/seed*")
                        if not (folder / "result.json").is_file() and any((folder / "checkpoints").glob("*.ckpt")))
    overrides = {json.dumps(run.get("method_args") or {}, sort_keys=True) for run in rows}
    header = (f"Task: {rows[0].get('task', '?')}; evaluated on: {rows[0].get('split', '?')}; final weights; mean ± std "
              f"over seeds ({'; '.join(m + ': ' + ' '.join(map(str, s)) for m, s in seeds.items())})."
              + (f" Method overrides: {overrides.pop()}." if len(overrides) == 1 and overrides != {"{}"} else "")
              + (" Method overrides differ between runs (see runs.csv)." if len(overrides) > 1 else "")
              + (f" Not finished (no result.json): {', '.join(unfinished)}." if unfinished else "")
              + (f" {note}" if note else "") + "\n\n")
    markdown = write_table(out, rows, methods, metrics, LABELS, header)
    written = ["table.md", "table.csv", "runs.csv"]
    # figures: each method's first seed that saved its maps; all seeds' calibration points
    snapshots = []
    for method in methods:
        found = [path.parent / "maps.npz" for path, run in runs if run["method"] == method
                 and (path.parent / "maps.npz").is_file()]
        if found:
            snapshots.append(_load_snapshot(found[0], method))
    if snapshots and num_show:
        size = min(len(snap.pred) for snap in snapshots)  # the same test inputs, as many as every method has
        snapshots = [MapSnapshot(s.name, s.images[:size], s.prob[:size], s.pred[:size], s.target[:size], s.points)
                     for s in snapshots]
        plot_maps(snapshots, out / "maps.png", num_show)
        plot_predictions(snapshots, out / "predictions.png", num_show)
        written += ["maps.png", "predictions.png"]
    points: dict[str, list] = {}
    for path, run in runs:
        if (path.parent / "calibration.npz").is_file():
            with np.load(path.parent / "calibration.npz") as data:
                points.setdefault(run["method"], []).append((data["confidence"], data["error"]))
    # a task trained and scored without keypoint labels (unsupervised keypoints: every weight 0) has no error
    if any(not all(math.isnan(e) for e in error) for method_runs in points.values() for _, error in method_runs):
        plot_calibration(points, out / "calibration.png")
        written.append("calibration.png")
    return rows, markdown, written


def _task_name(config: Sequence[Path], overrides: Sequence[str]) -> str:
    """reports/<task>: from the config's path (configs/mtfl/cpu.yaml -> mtfl_cpu), or the built-in task's name."""
    if config:
        path = config[-1]
        return path.stem if path.parent.name in ("configs", "") else f"{path.parent.name}_{path.stem}"
    cli = SamplingArgmaxCLI(args=[*overrides, "--trainer.logger", "false"], run=False)
    return getattr(cli.datamodule, "task", None) or type(cli.datamodule).__name__.removesuffix("DataModule").lower()
