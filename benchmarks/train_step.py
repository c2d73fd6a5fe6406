"""One training step of each task's real model, data and shapes: a sampling method against Soft, cold and warm.

    python benchmarks/train_step.py --tasks synthetic mtfl oct keypointnet skeleton_merger --runs 3
    python benchmarks/train_step.py --tasks coco h36m --runs 1 --warm 2      # ResNet-50: minutes a step on CPU

Each task is its config (the model, data module and method arguments that ``sampling-argmax fit --config``
builds), one batch of the task's data (the samples in ``$SAMPLING_ARGMAX_DATA``, default ``../shared/data``;
repeated up to the config's batch size where a sample holds fewer), and a step =
``training_step`` (model forward + the method's loss) + backward + the optimizer's step, as in ``fit``:

| task | config | sampling method | maps |
|---|---|---|---|
| synthetic | configs/synthetic.yaml | samp_tri | 32 x 3 x 24 x 24 |
| mtfl | configs/mtfl/cpu.yaml | samp_tri | 32 x 5 x 32 x 32 |
| coco | configs/coco.yaml | samp_tri | 32 x 17 x 64 x 48 (ResNet-50) |
| h36m | configs/h36m/paper.yaml | samp_tri | 16 x 18 x 64^3 volumes, S = 10 (ResNet-50) |
| oct | configs/synthetic_oct.yaml | samp_tri | 8 x 9 boundaries x 64 columns x 128 rows, S = 5 |
| keypointnet | configs/keypointnet/cpu.yaml | samp_gau | 8 x K x 2048 points (PointNet++) |
| skeleton_merger | configs/skeleton_merger/cpu.yaml | samp_gau | 8 x K x 2048 points |

(point sets have only the Gaussian basis, so their sampling method is samp_gau; OCT runs the synthetic OCT data
with configs/oct/cpu.yaml's network, as the shared samples hold no MSHC volume.) Every (task, method) runs in a
**fresh process** (``--worker``), so its first step is a cold start: first calls, lazy initializations and, for
the sampling method, whatever the default "auto" path does first (:mod:`sampling_argmax._fused`). Printed per
task: the first step (cold) and the median of ``--warm`` later steps (warm), each as wall time and the process's
CPU time, and their ratios sampling / Soft; the two methods' processes alternate (Soft, sampling, Soft, ...)
``--runs`` times and the ratios are medians over runs. After the first step the sampling method's process
builds the native CPU kernel (what "auto" does by itself once a process's eager calls have paid for it, after
2^23 cell-samples: e.g. 5 steps of the synthetic task, 1 of COCO; the build time is printed) and runs one
untimed step, so warm is the steady state of a training run. One intra-op thread by default (``--threads``).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_AIRPLANES = ["--data.init_args.data_root", "{data}/keypointnet/airplane-sample", "--data.init_args.splits_dir",
              "{data}/keypointnet/splits", "--data.init_args.missing_clouds", "skip",
              "--data.init_args.val_split", "test"]  # the 13-cloud airplane sample
_H36M = ["--data.init_args.data_root", "{data}/h36m", "--data.init_args.train_annotation", "test_h36m_body3d.npz",
         "--data.init_args.test_annotation", "test_h36m_body3d.npz", "--data.init_args.train_subjects",
         '["S1", "S5", "S7", "S8"]', "--data.init_args.test_subjects", '["S1", "S5", "S7", "S8"]',
         "--data.init_args.train_stride", "1", "--data.init_args.test_stride", "1", "--data.init_args.mpii_root",
         "{data}/mpii", "--data.init_args.mpii_annotation", "test_mpii.json"]  # the mmpose fixtures
TASKS = {  # name: (config, sampling method, extra arguments; {data} = $SAMPLING_ARGMAX_DATA)
    "synthetic": ("configs/synthetic.yaml", "samp_tri", []),
    "mtfl": ("configs/mtfl/cpu.yaml", "samp_tri", []),
    "coco": ("configs/coco.yaml", "samp_tri", ["--data.data_root", "{data}/coco/coco-mini",
                                               "--data.val_split", "train2017"]),
    "h36m": ("configs/h36m/paper.yaml", "samp_tri", _H36M),
    "oct": ("configs/synthetic_oct.yaml", "samp_tri", []),  # the MSHC volumes are not in the shared samples
    "keypointnet": ("configs/keypointnet/cpu.yaml", "samp_gau", _AIRPLANES),
    "skeleton_merger": ("configs/skeleton_merger/cpu.yaml", "samp_gau", _AIRPLANES),
}


def _clock():
    return time.perf_counter(), time.process_time()


def _since(start):
    wall, cpu = _clock()
    return wall - start[0], cpu - start[1]


def _tile(batch, size: int):
    """The batch repeated up to ``size`` samples where the data sample holds fewer (the config's batch shape)."""
    import torch

    n = len(batch["index"]) if "index" in batch else next(len(v) for v in batch.values() if hasattr(v, "__len__"))
    if n >= size:
        return batch
    reps = -(-size // n)

    def tile(v):
        if isinstance(v, torch.Tensor) and v.dim() > 0 and v.shape[0] == n:
            return torch.cat([v] * reps)[:size]
        if isinstance(v, list) and len(v) == n:
            return (v * reps)[:size]
        return v

    return {k: tile(v) for k, v in batch.items()}


def worker(task: str, method: str, warm: int, threads: int) -> dict:
    """Build the task in this process, time its first step and ``warm`` steady-state steps (JSON-able)."""
    import torch

    torch.set_num_threads(threads)
    torch.set_flush_denormal(True)  # as the CLI does
    from sampling_argmax import _native
    from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI

    start = _clock()
    config, _, extra = TASKS[task]
    extra = [a.format(data=os.environ.get("SAMPLING_ARGMAX_DATA", "")) for a in extra]
    folder = tempfile.mkdtemp(prefix="train_step_")
    os.chdir(folder)  # the CLI's run folders land here, not in the repository
    cli = SamplingArgmaxCLI(args=["--config", str(ROOT / config), "--method", method, "--trainer.logger", "false",
                                  "--trainer.default_root_dir", folder, *extra], run=False)
    module, data = cli.model, cli.datamodule
    data.prepare_data()
    data.setup("fit")
    batch = _tile(next(iter(data.train_dataloader())), data.batch_size)
    optimizers = module.configure_optimizers()
    optimizer = optimizers["optimizer"] if isinstance(optimizers, dict) else optimizers
    if isinstance(optimizer, (list, tuple)):
        optimizer = optimizer[0]
    module.train()
    setup = _since(start)

    def step():
        optimizer.zero_grad(set_to_none=True)
        module.training_step(batch, 0).backward()
        optimizer.step()

    begin = _clock()
    step()
    first = _since(begin)
    begin = _clock()
    if method != "soft" and _native.library(build=False) is None:
        _native.library()  # what "auto" does once the process's eager calls paid for it (see _fused)
    build = _since(begin)
    step()  # a second untimed step: allocator caches
    times = []
    for _ in range(warm):
        begin = _clock()
        step()
        times.append(_since(begin))
    return {"setup": setup, "first": first, "build": build, "warm_wall": statistics.median(t[0] for t in times),
            "warm_cpu": statistics.median(t[1] for t in times), "native": _native.library(build=False) is not None}


def _run_worker(task, method, args) -> dict:
    command = [sys.executable, __file__, "--worker", task, method, "--warm", str(args.warm), "--threads",
               str(args.threads)]
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src") + os.pathsep + os.environ.get("PYTHONPATH", ""),
               OMP_NUM_THREADS=str(args.threads))
    env.setdefault("SAMPLING_ARGMAX_DATA", str(ROOT.parent / "shared" / "data"))  # as tests/conftest.py
    done = subprocess.run(command, capture_output=True, text=True, env=env, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{task}/{method} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", nargs="+", choices=sorted(TASKS), default=["synthetic", "mtfl"])
    parser.add_argument("--runs", type=int, default=3, help="fresh-process pairs (Soft, sampling) per task")
    parser.add_argument("--warm", type=int, default=5, help="timed steady-state steps per process (median)")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads in each process")
    parser.add_argument("--worker", nargs=2, metavar=("TASK", "METHOD"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        print(json.dumps(worker(*args.worker, args.warm, args.threads)))
        return
    if args.runs < 1 or args.warm < 1:
        parser.error("--runs and --warm must be >= 1")
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python "
          f"{platform.python_version()}, {args.threads} thread(s) per process, load average "
          f"{os.getloadavg()[0]:.1f} at start", flush=True)
    print("| task | method | first step wall (s) | / Soft | first step CPU (s) | / Soft | warm wall (s) | / Soft | "
          "warm CPU (s) | / Soft | warm path | build (s) |\n" + "|---" * 12 + "|", flush=True)
    for task in args.tasks:
        sampling = TASKS[task][1]
        results = {"soft": [], sampling: []}
        for _ in range(args.runs):
            for method, rows in results.items():
                rows.append(_run_worker(task, method, args))
        ratios = {key: statistics.median(s[key] / b[key] if key.startswith("warm") else s["first"][i] / b["first"][i]
                                         for s, b in zip(results[sampling], results["soft"]))
                  for key, i in (("first_wall", 0), ("first_cpu", 1), ("warm_wall", None), ("warm_cpu", None))}
        for method, rows in results.items():
            med = {k: statistics.median(r["first"][i] for r in rows) for k, i in (("wall", 0), ("cpu", 1))}
            warm = {k: statistics.median(r[f"warm_{k}"] for r in rows) for k in ("wall", "cpu")}
            own = method == sampling
            path = ("native" if rows[-1]["native"] else "eager") if own else "-"
            build = f"{statistics.median(r['build'][0] for r in rows):.1f}" if own else "-"
            ratio = {key: f"{value:.2f}" if own else "1.00" for key, value in ratios.items()}
            print(f"| {task} | {method} | {med['wall']:.2f} | {ratio['first_wall']} | {med['cpu']:.2f} | "
                  f"{ratio['first_cpu']} | {warm['wall']:.3f} | {ratio['warm_wall']} | {warm['cpu']:.3f} | "
                  f"{ratio['warm_cpu']} | {path} | {build} |", flush=True)
    print(f"load average at end: {os.getloadavg()[0]:.1f}")


if __name__ == "__main__":
    main()
