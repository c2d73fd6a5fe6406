"""How far healthy runs stay from the divergence guard's limits (sampling_argmax.training.divergence).

Trains the built-in synthetic 2D task (the defaults of ``sampling-argmax fit``) with each method given and
prints, over the whole run, the largest growth of a parameter tensor's norm (the guard's
``max_weight_growth`` statistic) and the largest logit range of one map (``max_logit_range``) in a
training batch. ``--ckpt FILE --input IMAGES...`` instead prints the largest logit range of a trained
checkpoint's maps on those files (e.g. an MTFL run on MTFL faces).

Usage::

    python experiments/divergence_margins.py --methods soft samp_tri [--lr 2e-3]
    python experiments/divergence_margins.py --ckpt runs/mtfl/soft/checkpoints/last.ckpt --input faces/*.jpg
"""

from __future__ import annotations

import argparse
import math
import tempfile

import lightning as L

from sampling_argmax.training.divergence import DivergenceGuard
from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI


class Record(L.Callback):
    """Largest weight growth and logit range seen, read from the module's own guard (limits off)."""

    def __init__(self) -> None:
        self.growth = 0.0
        self.range = 0.0

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
        guard: DivergenceGuard = pl_module.guard
        for name, p in pl_module.named_parameters():
            ratio = float(p.detach().norm()) / max(guard._start.get(name, 1.0), 1.0)
            self.growth = max(self.growth, ratio)
        self.range = max(self.range, pl_module.guard._range)  # runs before the guard, which resets it


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--methods", nargs="+", default=["soft", "samp_tri"])
    parser.add_argument("--lr", type=float, default=None)
    parser.add_argument("--ckpt", default=None, help="a trained checkpoint: its logit range on --input")
    parser.add_argument("--input", nargs="*", default=[])
    args = parser.parse_args()
    if args.ckpt:
        from sampling_argmax.inference import Predictor
        from sampling_argmax.training.divergence import logit_range

        predictor = Predictor.from_checkpoint(args.ckpt, batch_size=8)
        ranges = []
        predictor.module.model.register_forward_hook(
            lambda module, inputs, output: ranges.append(logit_range(predictor.module.method.maps(output))))
        failed = sum(isinstance(row, Exception) for _, row in predictor.run(predictor.inputs(args.input)[0]))
        print(f"{args.ckpt}: {len(args.input) - failed} inputs, largest logit range of one map {max(ranges):.4g}")
        return
    print("| method | lr | steps | largest weight growth | largest logit range of one map |")
    print("|---|---|---|---|---|")
    for method in args.methods:
        with tempfile.TemporaryDirectory() as root:
            extra = ["--model.lr", str(args.lr)] if args.lr else []
            cli = SamplingArgmaxCLI(args=["--method", method, *extra, "--trainer.default_root_dir", root,
                                          "--trainer.logger", "false", "--trainer.enable_progress_bar", "false",
                                          "--trainer.enable_checkpointing", "false",
                                          "--model.max_weight_growth", ".inf", "--model.max_logit_range", ".inf"],
                                    run=False)
            record = Record()
            cli.trainer.callbacks.append(record)
            cli.trainer.fit(cli.model, datamodule=cli.datamodule)
            lr = cli.model.lr
            print(f"| {method} | {lr:g} | {cli.trainer.global_step} | {record.growth:.3g} | "
                  f"{record.range if math.isfinite(record.range) else 'inf'} |", flush=True)


if __name__ == "__main__":
    main()
