"""experiments/mtfl_budget_table.py: the gap to Soft is paired by seed, and missing runs say so."""

import csv
import importlib.util
from pathlib import Path

import pytest

_PATH = Path(__file__).resolve().parents[2] / "experiments" / "mtfl_budget_table.py"
_SPEC = importlib.util.spec_from_file_location("mtfl_budget_table", _PATH)
mtfl_budget_table = importlib.util.module_from_spec(_SPEC)
_SPEC.loader.exec_module(mtfl_budget_table)


def _report(folder: Path, rows: list[tuple[str, int, float]]) -> Path:
    folder.mkdir()
    with open(folder / "runs.csv", "w", newline="") as handle:
        writer = csv.DictWriter(handle, ["method", "seed", "rel_err", "abs_err", "calibration", "steps"])
        writer.writeheader()
        for method, seed, rel in rows:
            writer.writerow({"method": method, "seed": seed, "rel_err": rel, "abs_err": rel / 2,
                             "calibration": 0.1, "steps": 4050})
    return folder


def test_gap_is_paired_by_seed_and_missing_methods_are_dashes(tmp_path):
    # Soft seeds 0, 1 (10, 12); Samp. Tri. only seed 1 (13): the paired gap is 13 - 12 = 1, not 13 - 11
    report = _report(tmp_path / "r", [("soft", 0, 10.0), ("soft", 1, 12.0), ("samp_tri", 1, 13.0)])
    rows = {line.split("|")[1].strip(): [c.strip() for c in line.split("|")[2:-1]]
            for line in mtfl_budget_table.table([report]).splitlines()[2:]}
    assert rows["4050 steps: Rel. Err (%) ↓"] == ["11.00 ± 1.41", "–", "13.00", "–"]
    assert rows["4050 steps: gap to Soft, paired by seed"] == ["", "–", "1.00", "–"]
    assert rows["4050 steps: Rel. Err per seed"][0] == "10.00 (s0) / 12.00 (s1)"


def test_missing_runs_csv_names_the_command(tmp_path):
    with pytest.raises(SystemExit, match="collect_runs.py"):
        mtfl_budget_table.table([tmp_path])
