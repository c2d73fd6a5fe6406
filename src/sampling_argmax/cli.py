"""``sampling-argmax`` command line: ``fit | validate | test | predict`` (LightningCLI), ``compare``, ``visualize``,
``predict --input`` (a checkpoint on your own files, :mod:`sampling_argmax.inference`) and ``export``.

Defaults (no ``--config``): :class:`~sampling_argmax.models.SmallHeatmapNet` with sampling-argmax
(triangular basis) on the synthetic 2D task.

Examples::

    sampling-argmax fit                                   # synthetic 2D, samp_tri
    sampling-argmax fit --config configs/coco.yaml --method samp_gau --data.data_root /data/coco
    sampling-argmax fit --resume                          # continue from runs/.../checkpoints/last.ckpt
    sampling-argmax test --ckpt_path last
    sampling-argmax fit --trainer.devices 2 --trainer.strategy ddp --trainer.accelerator cpu
    sampling-argmax compare --seeds 0 1 2                 # the paper's six methods side by side
    sampling-argmax predict --ckpt_path last.ckpt --input photos/ --draw   # your own images -> predictions/
    sampling-argmax export --ckpt_path last.ckpt --format onnx
"""

from __future__ import annotations

import sys

import torch

from sampling_argmax.export import export_main
from sampling_argmax.inference import predict_main
from sampling_argmax.training.checkpoints import RunLockedError
from sampling_argmax.training.compare import compare_main
from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI
from sampling_argmax.training.divergence import DivergedError
from sampling_argmax.training.report import visualize_main

__all__ = ["main"]

#: Errors that carry a message for the user (bad input, a busy folder, a diverged run): printed without a
#: traceback, exit status 1.
USER_ERRORS = (ValueError, OSError, RunLockedError, DivergedError)


def _has_option(argv: list[str], option: str) -> bool:
    return any(a == option or a.startswith(option + "=") for a in argv)


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``sampling-argmax`` console script."""
    # Denormal floats make CPU kernels 5-10x slower; regularized maps (e.g. Soft w/ V.R.) drive some
    # activations there mid-training. Flushing them to zero changes no result that matters.
    torch.set_flush_denormal(True)
    command = sys.argv[1:] if argv is None else list(argv)
    try:
        if command and command[0] == "compare":
            compare_main(command[1:])
        elif command and command[0] == "visualize":
            visualize_main(command[1:])
        elif command and command[0] == "predict" and (_has_option(command[1:], "--input") or (
                {"-h", "--help"} & set(command[1:]) and not _has_option(command[1:], "--config"))):
            predict_main(command[1:])
        elif command and command[0] == "export":
            try:
                export_main(command[1:])
            except ImportError as error:  # the optional ONNX packages: the message says what to install
                raise ValueError(str(error)) from None
        else:
            SamplingArgmaxCLI(
                args=argv,
                parser_kwargs={
                    "description": "Train and evaluate localization methods. Other subcommands: "
                    "'sampling-argmax compare --help' (the six methods side by side), "
                    "'sampling-argmax visualize --help' (probability-map figures of a checkpoint), "
                    "'sampling-argmax predict --help' (a checkpoint on your own files), "
                    "'sampling-argmax export --help' (ONNX / TorchScript)."
                },
            )
    except USER_ERRORS as error:
        name = " ".join(command[:1]) or "fit"
        print(f"sampling-argmax {name}: error: {error} ({type(error).__name__})", file=sys.stderr)
        raise SystemExit(1) from None


if __name__ == "__main__":
    main()
