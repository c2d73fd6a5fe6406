"""The Gumbel-form x temperature study of experiments/gumbel_tau_study.sh as one table per task.

For every cell ``<form>_<schedule>`` of ``REPORT/<task>/`` and every finished seed: the task's test
metrics (from each run's result.json) and the map statistics of its final checkpoint (error in cells,
peak probability, spread, snap to cell centres; see map_statistics.py). Writes ``REPORT/<task>/study.md``.

Usage::

    python experiments/gumbel_tau_table.py reports/gumbel_tau
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from map_statistics import METRICS, map_statistics  # noqa: E402  (the sibling script)

FORMS = {"paper": "paper softmax((log π + g)/τ)", "authors": "authors softmax(log π + g/τ)"}
SCHEDULES = {"linear": "τ = max(0.5, 2 − 3·epoch/50)", "const1": "τ = 1", "const05": "τ = 0.5"}
TASK_METRICS = {"synthetic": ("mean_error", "pck", "calibration"), "mtfl": ("rel_err", "abs_err", "calibration")}


def _cell(values: list[float]) -> str:
    array = np.asarray(values, dtype=float)
    if array.size == 0:
        return "–"
    return f"{array.mean():.3f} ± {array.std(ddof=1):.3f}" if array.size > 1 else f"{array.mean():.3f} (1 seed)"


def task_table(folder: Path, metrics: tuple[str, ...]) -> str:
    lines = ["| Gumbel form | τ | seeds | " + " | ".join(metrics) + " | " + " | ".join(f"map {m}" for m in METRICS) + " |",
             "|---|---|---|" + "---|" * (len(metrics) + len(METRICS))]
    for form, form_label in FORMS.items():
        for schedule, schedule_label in SCHEDULES.items():
            cell = "paper_const1" if schedule == "const1" else f"{form}_{schedule}"  # one formula at tau = 1
            runs = sorted((folder / cell / "runs" / "samp_tri").glob("seed*/result.json"))
            results = [json.loads(r.read_text()) for r in runs]
            maps = [map_statistics(r.parent / "checkpoints" / "last.ckpt")[0] for r in runs]
            cells = [_cell([r[m] for r in results]) for m in metrics] + [_cell([s[m] for s in maps]) for m in METRICS]
            lines.append(f"| {form_label} | {schedule_label} | {len(runs)} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def main(report: Path) -> str:
    out = []
    for task, metrics in TASK_METRICS.items():
        if (report / task).is_dir():
            table = task_table(report / task, metrics)
            (report / task / "study.md").write_text(table)
            out.append(f"## {task}\n\n{table}")
    if not out:
        raise SystemExit(f"no synthetic/ or mtfl/ study under {report}; run experiments/gumbel_tau_study.sh first")
    return "\n".join(out)


if __name__ == "__main__":
    torch.set_flush_denormal(True)
    print(main(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/gumbel_tau")))
