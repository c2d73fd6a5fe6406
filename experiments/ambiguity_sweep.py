"""Issue 29, part 1: Soft, Soft w/ D.R., Samp. Tri and Samp. Gau on the synthetic 2D task from no ambiguity to heavy.

The task is the built-in one of ``sampling-argmax compare`` (configs/synthetic.yaml: 48x48 images, 3 landmarks,
30 short epochs of 8 batches, one CPU thread), with only its ambiguity varied through the data module's knobs
(:class:`~sampling_argmax.data.synthetic.SyntheticDataModule`):

========  ===========  =========  =====================  ==============================================
level     distractors  occlusion  distractor_similarity  what a landmark looks like next to the others
========  ===========  =========  =====================  ==============================================
none      0            0.0        0.0                    the only glyph of its shape, never covered
light     1            0.2        0.0                    one look-alike without the centre dot
default   2            0.4        0.0                    today's task (the defaults)
heavy     3            0.6        1.0                    three look-alikes with the same dot: only the
                                                         layout (a jittered polygon) tells them apart
strong    3            0.6        0.5                    (optional extra, between default and heavy)
========  ===========  =========  =====================  ==============================================

``run`` trains every (level, method, seed) with ``sampling-argmax compare --resume --out <out>/<level>``, seed by
seed (all levels and methods of seed 0 first), skipping runs that already have a result.json; interrupted, it is
resumed by running the same command again. Several ``run`` processes share the work: each takes the next run that
no other one holds (an OS lock on ``runs/<method>/seed<s>/sweep.claim``, dropped when its holder dies). ``report`` gathers what is finished into ``<out>/table.md`` (mean
error, PCK, a mode count and the map width, mean ± std over seeds) and a figure.

Usage::

    # streams of one thread each share the runs; any of them can be stopped and started again
    for stream in 1 2 3; do OMP_NUM_THREADS=1 nice -n 5 python experiments/ambiguity_sweep.py run & done
    python experiments/ambiguity_sweep.py report --figure docs/ambiguity_sweep.png
"""

from __future__ import annotations

import argparse
import fcntl
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

LEVELS: dict[str, dict[str, float]] = {
    "none": {"distractors": 0, "occlusion": 0.0, "distractor_similarity": 0.0},
    "light": {"distractors": 1, "occlusion": 0.2, "distractor_similarity": 0.0},
    "default": {"distractors": 2, "occlusion": 0.4, "distractor_similarity": 0.0},
    "strong": {"distractors": 3, "occlusion": 0.6, "distractor_similarity": 0.5},
    "heavy": {"distractors": 3, "occlusion": 0.6, "distractor_similarity": 1.0},
}
#: The levels every seed runs, in this order; "strong" is an extra run after them when time allows.
CORE_LEVELS = ("none", "light", "default", "heavy")
METHODS = ("soft", "soft_dr", "samp_tri", "samp_gau")


def level_overrides(level: str) -> list[str]:
    """The ``compare`` arguments that set ``level``'s ambiguity on the built-in synthetic 2D task."""
    return [f"--data.init_args.{name}={value}" for name, value in LEVELS[level].items()]


@contextmanager
def claim(folder: Path) -> Iterator[bool]:
    """True while this process holds ``folder/sweep.claim`` (non-blocking); False when another process does."""
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "sweep.claim", "a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def run(out: Path, levels: list[str], methods: list[str], seeds: list[int], extra: list[str]) -> None:
    from sampling_argmax.training.compare import compare_main

    for seed in seeds:
        for level in levels:
            for method in methods:
                folder = out / level / "runs" / method / f"seed{seed}"
                if (folder / "result.json").is_file():
                    continue
                with claim(folder) as mine:
                    if not mine or (folder / "result.json").is_file():  # another stream has or had it
                        continue
                    argv = ["--methods", method, "--seeds", str(seed), "--num_show", "0", "--resume", "--out",
                            str(out / level), *level_overrides(level), *extra]
                    print("sampling-argmax compare " + " ".join(argv), flush=True)
                    # in this process, not a new one: the sampling methods' torch.compile graphs (30-70 s each
                    # on 2 cores) are built once per stream instead of once per run
                    compare_main(argv)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("run", help="train the missing runs (resumable)")
    train.add_argument("--levels", nargs="+", default=list(CORE_LEVELS), choices=list(LEVELS))
    train.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    train.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    report = sub.add_parser("report", help="table and figure of the finished runs")
    report.add_argument("--levels", nargs="+", default=None, choices=list(LEVELS),
                        help="default: every level with a finished run, in the order none light default strong heavy")
    report.add_argument("--figure", type=Path, default=None, help="default: <out>/ambiguity_sweep.png")
    for p in (train, report):
        p.add_argument("--out", type=Path, default=Path("reports/ambiguity"))
    args, extra = parser.parse_known_args(argv)
    if args.command == "run":
        run(args.out, args.levels, args.methods, args.seeds, extra)
    else:
        if extra:
            parser.error(f"report takes no training arguments: {extra}")
        # the report script imports this one's LEVELS; it runs as its own process (no import cycle)
        script = Path(__file__).with_name("ambiguity_report.py")
        command = [sys.executable, str(script), str(args.out), str(args.figure or args.out / "ambiguity_sweep.png")]
        subprocess.run(command + (["--levels", *args.levels] if args.levels else []), check=True)


if __name__ == "__main__":
    main()
