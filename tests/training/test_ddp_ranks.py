"""What each DDP process draws, in a real 2-process gloo group (no Trainer): the mixed Human3.6M + MPII batch
sampler splits one sequence of batches between the ranks, and the sampling noise of a training step differs
between ranks (they are all seeded alike) while staying reproducible."""

import json
import os
from types import SimpleNamespace

import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

from sampling_argmax.data.h36m import MixedBatchSampler
from sampling_argmax.methods import paper_method
from sampling_argmax.training.module import LocalizationModule

WORLD = 2


def _worker(rank: int, folder: str) -> None:
    os.environ["PL_GLOBAL_SEED"] = "7"
    dist.init_process_group("gloo", init_method=f"file://{folder}/store", rank=rank, world_size=WORLD)
    try:
        sampler = MixedBatchSampler(first=10, second=6, batch_size=4, num_batches=5, seed=3)
        sampler.set_epoch(1)
        batches = list(sampler)
        # one training step's noise: the module's generator at step 5 of this rank, on the same logits
        torch.manual_seed(0)  # every rank seeded alike, as seed_everything does
        logits, target = torch.randn(2, 3, 8, 8), torch.rand(2, 3, 2) * 7
        step = SimpleNamespace(global_step=5, global_rank=dist.get_rank())
        losses = [float(paper_method("samp_tri", num_samples=4).loss(
            logits, target, generator=LocalizationModule.noise_generator(step, torch.device("cpu"))))
            for _ in range(2)]
        gathered = [None] * WORLD
        dist.all_gather_object(gathered, {"batches": batches, "length": len(sampler), "losses": losses})
        if rank == 0:
            with open(f"{folder}/result.json", "w") as handle:
                json.dump(gathered, handle)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow  # two spawned interpreters: ~10 s
def test_ranks_split_the_mixed_batches_and_draw_different_noise(tmp_path):
    mp.spawn(_worker, args=(str(tmp_path),), nprocs=WORLD, join=True)
    ranks = json.loads((tmp_path / "result.json").read_text())
    # the mixed sampler: rank r takes batches r, r + 2, ... of the one sequence a single process would see
    single = MixedBatchSampler(first=10, second=6, batch_size=4, num_batches=5, seed=3)
    single.set_epoch(1)
    sequence = list(single)
    assert [r["length"] for r in ranks] == [3, 2] and len(sequence) == 5
    assert ranks[0]["batches"] == sequence[0::2] and ranks[1]["batches"] == sequence[1::2]
    for batch in sequence:  # 2 of the first part (Human3.6M frames), 2 of the second (MPII people)
        assert sum(i < 10 for i in batch) == 2 and all(0 <= i < 16 for i in batch)
    # the noise: reproducible on a rank, different between ranks
    (a1, a2), (b1, b2) = ranks[0]["losses"], ranks[1]["losses"]
    assert a1 == a2 and b1 == b2
    assert a1 != b1
