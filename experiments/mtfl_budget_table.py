"""The MTFL budget trend of docs/when_to_use.md (section 2): one block of rows per compare report.

For each report (a folder written by ``sampling-argmax compare``, e.g. ``reports/mtfl_cpu`` at 1,350 steps and
``reports/mtfl_budget3x`` at 4,050) it prints, for Soft, Soft w/ D.R., Samp. Tri. and Samp. Gau.:

- Rel. Err (%), mean ± std over the report's seeds, and each seed's value;
- the gap to Soft, paired by seed (method minus Soft on the same seed, averaged over the seeds both have);
- Abs. Err (px) and calibration (Pearson of peak confidence with minus the face's rel. error).

Only finished runs count (compare's ``runs.csv``, rebuilt by ``python experiments/collect_runs.py REPORT``).

Usage::

    python experiments/collect_runs.py reports/mtfl_budget3x
    python experiments/mtfl_budget_table.py reports/mtfl_cpu reports/mtfl_budget3x
"""

from __future__ import annotations

import csv
import sys
from pathlib import Path

import numpy as np

METHODS = ("soft", "soft_dr", "samp_tri", "samp_gau")
HEADERS = ("Soft", "Soft w/ D.R.", "Samp. Tri.", "Samp. Gau.")


def _runs(report: Path) -> dict[str, dict[int, dict[str, float]]]:
    """{method: {seed: row}} of a report's finished runs."""
    path = report / "runs.csv"
    if not path.is_file():
        raise SystemExit(f"{path}: not found; run `python experiments/collect_runs.py {report}` first")
    runs: dict[str, dict[int, dict[str, float]]] = {}
    with open(path, newline="") as handle:
        for row in csv.DictReader(handle):
            runs.setdefault(row["method"], {})[int(row["seed"])] = {
                key: float(row[key]) for key in ("rel_err", "abs_err", "calibration", "steps")}
    return runs


def _mean(values: list[float], digits: int = 2) -> str:
    if not values:
        return "–"
    spread = f" ± {np.std(values, ddof=1):.{digits}f}" if len(values) > 1 else ""
    return f"{np.mean(values):.{digits}f}{spread}"


def block(report: Path) -> list[str]:
    runs = _runs(report)
    steps = sorted({int(r["steps"]) for seeds in runs.values() for r in seeds.values()})
    label = f"{'/'.join(map(str, steps))} steps"
    soft = runs.get("soft", {})
    lines = []
    for key, name in (("rel_err", "Rel. Err (%) ↓"), ("abs_err", "Abs. Err (px) ↓"),
                      ("calibration", "Calibration ↑")):
        cells = [_mean([r[key] for r in runs.get(m, {}).values()]) for m in METHODS]
        lines.append(f"| {label}: {name} | " + " | ".join(cells) + " |")
        if key != "rel_err":
            continue
        per_seed = []
        for m in METHODS:
            seeds = runs.get(m, {})
            per_seed.append(" / ".join(f"{seeds[s]['rel_err']:.2f} (s{s})" for s in sorted(seeds)) or "–")
        lines.append(f"| {label}: Rel. Err per seed | " + " | ".join(per_seed) + " |")
        gaps = []
        for m in METHODS:
            paired = [runs[m][s]["rel_err"] - soft[s]["rel_err"] for s in sorted(runs.get(m, {})) if s in soft]
            gaps.append("" if m == "soft" else (_mean(paired) if paired else "–"))
        lines.append(f"| {label}: gap to Soft, paired by seed | " + " | ".join(gaps) + " |")
    return lines


def table(reports: list[Path]) -> str:
    lines = ["| | " + " | ".join(HEADERS) + " |", "|---|" + "---|" * len(HEADERS)]
    for report in reports:
        lines += block(report)
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    if len(sys.argv) < 2:
        raise SystemExit("usage: python experiments/mtfl_budget_table.py REPORT [REPORT ...]")
    print(table([Path(p) for p in sys.argv[1:]]))
