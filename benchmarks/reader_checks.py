"""What the shared record checks (data/validation.py) cost when MTFL's training.txt is read.

    python benchmarks/reader_checks.py                        # $SAMPLING_ARGMAX_DATA/MTFL/training.txt
    python benchmarks/reader_checks.py --root /path/to/MTFL --repeats 5

Times ``read_annotations(training.txt)`` without the image checks (``check_images=False``: parsing and the
per-line rules) and with them (each image's existence, its size from the header, the landmarks inside it), the
first time in the process (header cache empty; the files in the OS page cache after the first repeat) and
again (header cache warm). Medians over ``--repeats``; the load average is printed, since the checks are I/O.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from sampling_argmax.data import validation
from sampling_argmax.data.mtfl import read_annotations


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--root", default=str(Path(os.environ.get("SAMPLING_ARGMAX_DATA", "../shared/data")) / "MTFL"))
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    file = Path(args.root) / "training.txt"
    times: dict[str, list[float]] = {"parse only (check_images=False)": [], "with image checks, cold header cache": [],
                                     "with image checks, warm header cache": []}
    for _ in range(args.repeats):
        start = time.perf_counter()
        records = read_annotations(file, check_images=False)
        times["parse only (check_images=False)"].append(time.perf_counter() - start)
        validation._header_size.cache_clear()
        start = time.perf_counter()
        read_annotations(file)
        times["with image checks, cold header cache"].append(time.perf_counter() - start)
        start = time.perf_counter()
        read_annotations(file)
        times["with image checks, warm header cache"].append(time.perf_counter() - start)
    print(f"{file}: {len(records)} lines; load average {os.getloadavg()[0]:.1f}; median of {args.repeats}")
    for name, values in times.items():
        print(f"  {name:40s} {statistics.median(values):6.2f} s")


if __name__ == "__main__":
    main()
