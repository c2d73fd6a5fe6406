"""Does the soft-argmax read-out learn what the loss trains? A short COCO overfitting probe per method setting.

    python experiments/coco_gumbel_probe.py                       # ~5 min on 1 CPU thread
    python experiments/coco_gumbel_probe.py --steps 150 --settings soft samp_tri:authors:2

Trains a fresh ResNet-18 SimpleBaseline (64-channel deconvolutions, 128x96 input, 32x24 maps) with Adam 1e-3
on the first 12 labeled people of ``coco-mini`` (no augmentation, eval crops), full batch, and reports the
read-out error (soft-argmax of the map, eval-mode BatchNorm, cells, visible joints) every 25 steps and,
at the end, where the probability mass sits. A setting is ``method[:gumbel[:tau]]`` with a constant
temperature tau (the first epochs of the paper's schedule, tau = max(0.5, 2 - 3 epoch / 50), are tau = 2).
"""

from __future__ import annotations

import argparse
import os
from pathlib import Path

import torch

from sampling_argmax import ConstantTemperature, soft_argmax
from sampling_argmax.data.coco import COCODataModule
from sampling_argmax.methods import paper_method
from sampling_argmax.models import ResNetDeconv

DEFAULT_SETTINGS = ("soft", "samp_tri:paper:2", "samp_tri:paper:0.5", "samp_tri:paper:1", "samp_tri:authors:2")


def build_method(setting: str):
    name, *rest = setting.split(":")
    overrides = {}
    if rest:
        overrides["gumbel"] = rest[0]
    if len(rest) > 1:
        overrides["schedule"] = ConstantTemperature(float(rest[1]))
    return paper_method(name, **overrides)


def probe(setting: str, batch: dict, steps: int, seed: int) -> list[str]:
    torch.manual_seed(seed)
    model = ResNetDeconv(depth=18, num_keypoints=17, deconv_channels=64)
    method = build_method(setting)
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    weight = batch["target_weight"]
    lines = []
    for step in range(steps + 1):
        model.train()
        loss = method.loss(model(batch["image"]), batch["target"], weight)
        if step % 25 == 0 or step == steps:
            model.eval()
            with torch.no_grad():
                logits = model(batch["image"])
            error = ((soft_argmax(logits) - batch["target"]).norm(dim=-1) * weight).sum() / weight.sum()
            lines.append(f"| {setting} | {step} | {loss.item():.4f} | {error.item():.2f} |")
        if step < steps:
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
    probability = torch.softmax(logits.flatten(2), -1).reshape(logits.shape)
    border = probability[..., 0, :].sum(-1) + probability[..., -1, :].sum(-1)
    lines.append(f"| {setting} | mass on the top/bottom rows | {float((border * weight).sum() / weight.sum()):.2f} | |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    default_root = Path(os.environ.get("SAMPLING_ARGMAX_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))
    parser.add_argument("--coco-mini", type=Path, default=default_root / "coco" / "coco-mini")
    parser.add_argument("--people", type=int, default=12)
    parser.add_argument("--steps", type=int, default=75)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--settings", nargs="+", default=list(DEFAULT_SETTINGS))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    module = COCODataModule(data_root=str(args.coco_mini), val_split="train2017", input_size=(96, 128),
                            heatmap_size=(24, 32))
    dataset = module.build_dataset("val")
    batch = torch.utils.data.default_collate([dataset[i] for i in range(min(args.people, len(dataset)))])
    print("| setting | step | loss | read-out error (cells) |\n|---|---|---|---|")
    for setting in args.settings:
        for line in probe(setting, batch, args.steps, args.seed):
            print(line, flush=True)


if __name__ == "__main__":
    main()
