"""One report from every finished run of a report folder, whichever `compare` invocations produced them.

`sampling-argmax compare` already rebuilds its folder's report from every finished run after each
invocation; this script does the same without training anything (e.g. after copying run folders in):
table.md, table.csv, runs.csv and the figures, through ``sampling_argmax.training.compare.collect_report``.

Usage::

    python experiments/collect_runs.py reports/learned_bases
"""

from __future__ import annotations

import sys
from pathlib import Path

from sampling_argmax.training.compare import collect_report


def collect(report: Path) -> str:
    return collect_report(report)[1]


if __name__ == "__main__":
    print(collect(Path(sys.argv[1])))
