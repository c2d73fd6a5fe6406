"""One table from every finished run of a report folder, whichever `compare` invocations produced them.

`compare` writes table.md/runs.csv for the methods and seeds of its own invocation; a study that runs
seeds or method groups separately into one folder (experiments/mtfl_map64.sh, experiments/learned_bases.sh)
gathers them here: every ``runs/<method>/seed<s>/result.json`` -> table.md, table.csv, runs.csv (methods in
the order of ``sampling_argmax.methods.METHODS``).

Usage::

    python experiments/collect_runs.py reports/learned_bases
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from sampling_argmax.methods import METHODS
from sampling_argmax.training.compare import LABELS
from sampling_argmax.training.report import write_table

NOT_METRICS = ("method", "seed", "task", "steps", "num_samples", "split")


def collect(report: Path) -> str:
    results = sorted(report.glob("runs/*/seed*/result.json"))
    if not results:
        raise SystemExit(f"no runs/<method>/seed<s>/result.json under {report}; run the study first")
    runs = [json.loads(path.read_text()) for path in results]
    order = {name: i for i, name in enumerate(METHODS)}
    methods = sorted({r["method"] for r in runs}, key=lambda m: (order.get(m, len(order)), m))
    runs.sort(key=lambda r: (order.get(r["method"], len(order)), r["seed"]))
    metrics = [k for k in runs[0] if k not in NOT_METRICS]
    per_method = {m: sorted(r["seed"] for r in runs if r["method"] == m) for m in methods}
    header = (f"Task: {runs[0].get('task', '?')}; evaluated on: {runs[0].get('split', '?')}; final weights; mean ± std "
              f"over seeds ({', '.join(f'{m}: {s}' for m, s in per_method.items())}).\n\n")
    return write_table(report, runs, methods, metrics, LABELS, header)


if __name__ == "__main__":
    print(collect(Path(sys.argv[1])))
