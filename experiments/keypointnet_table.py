"""Class-averaged PCK@0.01 of experiments/keypointnet_paper.sh: ``<out>/<category>/runs.csv`` -> one table.

    python experiments/keypointnet_table.py reports/keypointnet_paper

Rows: categories, then their mean (the paper's number); columns: methods (mean over seeds), the paper's
averages beside them.
"""

from __future__ import annotations

import csv
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np

PAPER = {"soft": 38.2, "soft_vr": 37.9, "soft_dr": 39.0, "samp_gau": 39.9}


def main(out: Path) -> str:
    table: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    for runs in sorted(out.glob("*/runs.csv")):
        for row in csv.DictReader(runs.open()):
            table[runs.parent.name][row["method"]].append(100 * float(row["pck"]))
    if not table:
        raise SystemExit(f"{out}/<category>/runs.csv: none found; run experiments/keypointnet_paper.sh first")
    methods = [m for m in PAPER if any(m in t for t in table.values())]
    lines = ["| category | " + " | ".join(methods) + " |", "|---" * (len(methods) + 1) + "|"]
    means = {m: [] for m in methods}
    for category, per_method in table.items():
        cells = []
        for m in methods:
            value = float(np.mean(per_method[m])) if per_method.get(m) else float("nan")
            means[m].append(value)
            cells.append(f"{value:.1f}")
        lines.append(f"| {category} | " + " | ".join(cells) + " |")
    lines.append("| **mean (ours)** | " + " | ".join(f"**{np.nanmean(means[m]):.1f}**" for m in methods) + " |")
    lines.append("| mean (paper) | " + " | ".join(f"{PAPER[m]:.1f}" for m in methods) + " |")
    text = "PCK@0.01 (geodesic, %), mean over seeds, per category and averaged over categories\n\n" + "\n".join(lines)
    (out / "table_pck.md").write_text(text + "\n")
    print(text)
    return text


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "reports/keypointnet_paper"))
