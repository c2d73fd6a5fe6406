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
resumed by running the same command again. ``report`` gathers what is finished into ``<out>/table.md`` (mean
error, PCK, a mode count and the map width, mean ± std over seeds) and a figure.

Usage::

    # two streams (one thread each) share the methods; each is resumable
    OMP_NUM_THREADS=1 nice -n 5 python experiments/ambiguity_sweep.py run --stream a &
    OMP_NUM_THREADS=1 nice -n 5 python experiments/ambiguity_sweep.py run --stream b &
    python experiments/ambiguity_sweep.py report --figure docs/ambiguity_sweep.png
"""

from __future__ import annotations

import argparse
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
#: Two one-thread streams with about equal work: a Soft and a sampling method each.
STREAMS = {"a": ("soft", "samp_tri"), "b": ("soft_dr", "samp_gau")}


def level_overrides(level: str) -> list[str]:
    """The ``compare`` arguments that set ``level``'s ambiguity on the built-in synthetic 2D task."""
    return [f"--data.init_args.{name}={value}" for name, value in LEVELS[level].items()]


def run(out: Path, levels: list[str], methods: list[str], seeds: list[int], extra: list[str]) -> None:
    from sampling_argmax.training.compare import compare_main

    for seed in seeds:
        for level in levels:
            todo = [m for m in methods if not (out / level / "runs" / m / f"seed{seed}" / "result.json").is_file()]
            if not todo:
                continue
            argv = ["--methods", *todo, "--seeds", str(seed), "--num_show", "0", "--resume", "--out",
                    str(out / level), *level_overrides(level), *extra]
            print("sampling-argmax compare " + " ".join(argv), flush=True)
            # in this process, not a new one: the sampling methods' torch.compile graphs (30-70 s each on
            # 2 cores) are built once per stream instead of once per (level, seed)
            compare_main(argv)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("run", help="train the missing runs (resumable)")
    train.add_argument("--levels", nargs="+", default=list(CORE_LEVELS), choices=list(LEVELS))
    train.add_argument("--methods", nargs="+", default=None, choices=list(METHODS))
    train.add_argument("--stream", choices=sorted(STREAMS), default=None,
                       help="a: soft + samp_tri, b: soft_dr + samp_gau (default: all four methods)")
    train.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    report = sub.add_parser("report", help="table and figure of the finished runs")
    report.add_argument("--levels", nargs="+", default=None, choices=list(LEVELS),
                        help="default: every level with a finished run, in the order none light default strong heavy")
    report.add_argument("--figure", type=Path, default=None, help="default: <out>/ambiguity_sweep.png")
    for p in (train, report):
        p.add_argument("--out", type=Path, default=Path("reports/ambiguity"))
    args, extra = parser.parse_known_args(argv)
    if args.command == "run":
        if args.methods and args.stream:
            parser.error("--methods and --stream both choose the methods; give one")
        methods = list(args.methods or STREAMS.get(args.stream, METHODS))
        run(args.out, args.levels, methods, args.seeds, extra)
    else:
        if extra:
            parser.error(f"report takes no training arguments: {extra}")
        from ambiguity_report import write_report  # noqa: PLC0415 (matplotlib and torch only when reporting)

        print(write_report(args.out, args.levels, args.figure or args.out / "ambiguity_sweep.png"))


if __name__ == "__main__":
    main()
