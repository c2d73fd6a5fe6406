"""Table and figure of the ambiguity sweep (experiments/ambiguity_sweep.py; its ``report`` command calls this).

For every level folder ``<out>/<level>`` and every finished run ``runs/<method>/seed<s>/result.json``: the test
mean error (input pixels) and PCK@2px of the run, and two statistics of its final maps on the test split
(experiments/map_statistics.py): the mode count and the width (spread, sqrt(Var_x + Var_y) in map cells). The map
statistics of a checkpoint are cached beside it in ``map_statistics.json``. Cells are mean ± std over the seeds
(sample std; one seed: no ±).

Usage::

    python experiments/ambiguity_report.py reports/ambiguity docs/ambiguity_sweep.png
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ambiguity_sweep import LEVELS, METHODS
from map_statistics import map_statistics

NAMES = {"soft": "Soft", "soft_dr": "Soft w/ D.R.", "samp_tri": "Samp. Tri", "samp_gau": "Samp. Gau"}
#: (key, column label, digits); the first two come from result.json, the rest from the maps.
COLUMNS = (("mean_error", "mean error (px) ↓", 3), ("pck", "PCK@2px ↑", 3), ("modes", "modes per map", 2),
           ("spread", "map width (cells)", 2), ("fit_time_s", "train time (s)", 0))


def run_statistics(result: Path) -> dict[str, float]:
    """result.json of one run + the map statistics of its last checkpoint (cached next to it)."""
    row = json.loads(result.read_text())
    checkpoint = result.parent / "checkpoints" / "last.ckpt"
    cache = result.parent / "map_statistics.json"
    stamp = checkpoint.stat().st_mtime_ns
    cached = json.loads(cache.read_text()) if cache.is_file() else {}
    if cached.get("checkpoint_mtime_ns") != stamp:
        statistics, _ = map_statistics(checkpoint)
        cached = {"checkpoint_mtime_ns": stamp, **statistics}
        cache.write_text(json.dumps(cached, indent=1))
    return {**row, **{k: v for k, v in cached.items() if k != "checkpoint_mtime_ns"}}


def gather(out: Path, levels: list[str] | None) -> dict[str, dict[str, list[dict[str, float]]]]:
    """level -> method -> finished runs (seed order), for the given levels or every level with a run."""
    chosen = levels or [name for name in LEVELS if (out / name / "runs").is_dir()]
    data: dict[str, dict[str, list[dict[str, float]]]] = {}
    for level in chosen:
        data[level] = {}
        for method in METHODS:
            results = sorted((out / level / "runs" / method).glob("seed*/result.json"),
                             key=lambda path: int(path.parent.name.removeprefix("seed")))
            runs = [run_statistics(r) for r in results]
            if runs:
                data[level][method] = runs
    if not any(data.values()):
        raise SystemExit(f"no finished run under {out}/<level>/runs; run experiments/ambiguity_sweep.py run first")
    return data


def _mean_std(values: list[float]) -> tuple[float, float]:
    """Mean and sample std of the finite values (a resumed run records no train time: NaN)."""
    array = np.asarray(values, dtype=float)
    array = array[np.isfinite(array)]
    if array.size == 0:
        return float("nan"), float("nan")
    return float(array.mean()), float(array.std(ddof=1)) if array.size > 1 else float("nan")


def _cell(values: list[float], digits: int) -> str:
    mean, std = _mean_std(values)
    if np.isnan(mean):
        return "–"
    return f"{mean:.{digits}f} ± {std:.{digits}f}" if np.isfinite(std) else f"{mean:.{digits}f}"


def table(data: dict[str, dict[str, list[dict[str, float]]]]) -> str:
    header = "| level | method | seeds | " + " | ".join(label for _, label, _ in COLUMNS) + " |"
    lines = [header, "|---|---|---|" + "---|" * len(COLUMNS)]
    for level, methods in data.items():
        knobs = ", ".join(f"{k.replace('distractor_similarity', 'similarity')} {v:g}" for k, v in LEVELS[level].items())
        best = min((np.mean([r["mean_error"] for r in runs]), m) for m, runs in methods.items())[1] if methods else None
        for method, runs in methods.items():
            cells = [_cell([r[key] for r in runs], digits) for key, _, digits in COLUMNS]
            if method == best:
                cells[0] = f"**{cells[0]}**"
            seeds = ",".join(str(r["seed"]) for r in runs)
            lines.append(f"| {level} ({knobs}) | {NAMES[method]} | {seeds} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def figure(data: dict[str, dict[str, list[dict[str, float]]]], path: Path) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib import ticker

    from sampling_argmax.data.synthetic import SyntheticLandmarks

    levels = list(data)
    fig = plt.figure(figsize=(14, 7.2), layout="constrained")
    top, bottom = fig.subfigures(2, 1, height_ratios=[1, 1.35])
    for ax, level in zip(np.atleast_1d(top.subplots(1, len(levels))), levels):
        sample = SyntheticLandmarks("test", 1, size=48, **LEVELS[level])[0]
        ax.imshow(sample["image"][0].numpy(), cmap="gray")
        ax.plot(*sample["keypoints"].numpy().T, "+", color="tab:red", ms=7, mew=1.5)
        ax.set_title(level, fontsize=10)
        ax.axis("off")
    top.suptitle("the same test scene at each level (red +: the landmarks)", fontsize=10)
    x = np.arange(len(levels))
    offsets = np.linspace(-0.12, 0.12, len(METHODS))
    for ax, (key, label, _) in zip(bottom.subplots(1, 4), COLUMNS[:4]):
        for offset, method in zip(offsets, METHODS):
            where = [i for i, level in enumerate(levels) if method in data[level]]
            stats = [_mean_std([r[key] for r in data[levels[i]][method]]) for i in where]
            if not where:
                continue
            means, stds = np.array(stats).T
            ax.errorbar(x[where] + offset, means, yerr=np.nan_to_num(stds), marker="o", ms=4, capsize=3,
                        label=NAMES[method])
        ax.set_xticks(x, levels)
        ax.set_xlabel("ambiguity")
        ax.set_title(label + (" (log scale)" if key == "mean_error" else ""), fontsize=10)
        if key == "mean_error":  # from under a pixel to several: the low levels' differences stay visible
            ax.set_yscale("log")
            ax.yaxis.set_major_locator(ticker.LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.yaxis.set_major_formatter(ticker.FormatStrFormatter("%g"))
            ax.yaxis.set_minor_formatter(ticker.NullFormatter())
        ax.grid(alpha=0.3, which="both")
    bottom.axes[0].legend(fontsize=8)
    seeds = sorted({len(runs) for methods in data.values() for runs in methods.values()})
    bottom.suptitle(f"test split, final weights; mean ± std over {'/'.join(map(str, seeds))} seeds", fontsize=10)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def write_report(out: Path, levels: list[str] | None, figure_path: Path) -> str:
    torch.set_flush_denormal(True)
    data = gather(out, levels)
    text = table(data)
    (out / "table.md").write_text(text)
    figure(data, figure_path)
    return text + f"\nwrote {out / 'table.md'} and {figure_path}\n"


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out", type=Path, nargs="?", default=Path("reports/ambiguity"))
    parser.add_argument("figure", type=Path, nargs="?", default=None)
    parser.add_argument("--levels", nargs="+", default=None, choices=list(LEVELS))
    args = parser.parse_args()
    print(write_report(args.out, args.levels, args.figure or args.out / "ambiguity_sweep.png"))
