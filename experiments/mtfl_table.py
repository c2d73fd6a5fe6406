"""Supplementary Table 1 layout (Abs. Err / Rel. Err rows, six method columns) and per-landmark errors
from a compare report.

Usage: python experiments/mtfl_table.py reports/mtfl_cpu   ->  prints and writes reports/mtfl_cpu/table1.md
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

METHODS = ("soft", "soft_vr", "soft_dr", "samp_uni", "samp_tri", "samp_gau")
HEADERS = ("Soft", "Soft w/ V.R.", "Soft w/ D.R.", "Samp. Uni.", "Samp. Tri.", "Samp. Gau.")
PAPER = {"abs_err": (3.18, 3.16, 3.15, 3.00, 2.98, 2.94), "rel_err": (7.25, 7.22, 7.20, 6.86, 6.82, 6.96)}
ROWS = (("abs_err", "Abs. Err (px) ↓"), ("rel_err", "Rel. Err (%) ↓"), ("calibration", "Calibration (Pearson) ↑"))
LANDMARKS = ("left_eye", "right_eye", "nose", "left_mouth", "right_mouth")


def _cell(runs: list[dict], method: str, key: str) -> str:
    values = np.array([float(r[key]) for r in runs if r["method"] == method], float)
    if values.size == 0:
        return "–"
    spread = f" ± {values.std(ddof=1):.2f}" if values.size > 1 else ""
    return f"{values.mean():.2f}{spread}"


def table1(report: Path) -> str:
    with open(report / "runs.csv", newline="") as handle:
        runs = list(csv.DictReader(handle))
    seeds = sorted({int(r["seed"]) for r in runs})
    lines = ["| | " + " | ".join(HEADERS) + " |", "|---|" + "---|" * len(HEADERS)]
    for key, label in ROWS:
        lines.append(f"| {label}, ours | " + " | ".join(_cell(runs, m, key) for m in METHODS) + " |")
        if key in PAPER:
            lines.append(f"| {label}, paper | " + " | ".join(f"{v:.2f}" for v in PAPER[key]) + " |")
    lines += ["", "Rel. Err (%) per landmark, ours:", "", "| | " + " | ".join(HEADERS) + " |",
              "|---|" + "---|" * len(HEADERS)]
    for name in LANDMARKS:
        key = f"rel_err/{name}"
        lines.append(f"| {name.replace('_', ' ')} | " + " | ".join(_cell(runs, m, key) for m in METHODS) + " |")
    steps = "/".join(sorted({r["steps"] for r in runs}))
    faces = "/".join(sorted({str(int(float(r["num_samples"]))) for r in runs}))
    note = (f"\nours: mean ± std over seeds {' '.join(map(str, seeds))} ({len(runs)} runs, {steps} training steps "
            f"each), evaluated on {faces} faces (the compare's test split); paper: official MTFL test split.\n")
    return "\n".join(lines) + "\n" + note


if __name__ == "__main__":
    folder = Path(sys.argv[1] if len(sys.argv) > 1 else "reports/mtfl_cpu")
    text = table1(folder)
    (folder / "table1.md").write_text(text)
    print(text)
