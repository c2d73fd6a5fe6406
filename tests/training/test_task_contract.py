"""A new task is additive: a data module, an evaluator and a config in a folder of their own, trained and
evaluated by ``sampling-argmax fit/test/compare`` with no change to ``training/``.

The toy task (docs/tasks.md walks through it) locates K bright spots: in a 1D signal, in a 3D volume, and
among the points of a cloud (the keypoint is the point nearest to a corner of the cube).
"""

import json
import textwrap

import numpy as np
import pytest
import torch
import yaml

from sampling_argmax.cli import main
from sampling_argmax.training.compare import compare_main
from sampling_argmax.training.lightning_cli import SamplingArgmaxCLI

TOY_TASK = textwrap.dedent('''
    """Toy task: K spots in a signal, a volume or a point cloud."""
    import numpy as np
    import torch
    from torch import nn
    from torch.utils.data import Dataset

    from sampling_argmax.data.base import LocalizationDataModule
    from sampling_argmax.metrics.base import EvaluationContext, Evaluator, require
    from sampling_argmax.metrics.localization import mean_keypoint_error

    CORNERS = np.array([[-1, -1, -1], [1, 1, 1]], dtype=np.float32)


    class Spots(Dataset):
        def __init__(self, kind, size, length, seed):
            self.kind, self.size, self.length, self.seed = kind, size, length, seed

        def __len__(self):
            return self.length

        def __getitem__(self, index):
            rng = np.random.default_rng([self.seed, index])
            if self.kind == "points":
                cloud = rng.uniform(-1, 1, size=(self.size, 3)).astype(np.float32)
                nearest = [np.argmin(((cloud - c) ** 2).sum(-1)) for c in CORNERS]
                target = cloud[nearest]
                return {"points": torch.from_numpy(cloud), "target": torch.from_numpy(target),
                        "target_weight": torch.ones(2), "index": index, "truth": torch.from_numpy(target)}
            dims = 1 if self.kind == "signal" else 3
            grid = np.zeros((self.size,) * dims, np.float32)
            target = rng.integers(2, self.size - 2, size=(2, dims)).astype(np.float32)
            for k, spot in enumerate(target):
                grid[tuple(int(v) for v in spot[::-1])] = 1.0 + k  # arrays are [z, y, x], targets x, y, z
            noisy = grid + rng.normal(0, 0.05, grid.shape).astype(np.float32)
            return {self.kind: torch.from_numpy(noisy)[None], "target": torch.from_numpy(target),
                    "target_weight": torch.ones(2), "index": index, "to_original": torch.eye(dims + 1).double(),
                    "truth": torch.from_numpy(target)}


    class ToyDataModule(LocalizationDataModule):
        num_keypoints = 2
        flip_pairs = ()

        def __init__(self, kind: str = "signal", size: int = 16, batch_size: int = 8):
            super().__init__()
            self.save_hyperparameters()
            self.kind, self.size, self.batch_size = kind, size, batch_size
            self.task = f"toy_{kind}"

        @property
        def input_shape(self):
            return (self.size, 3) if self.kind == "points" else (1,) + (self.size,) * (1 if self.kind == "signal" else 3)

        @property
        def map_shape(self):
            return (self.size,) if self.kind == "points" else (self.size,) * (1 if self.kind == "signal" else 3)

        def mirror(self, key, value):
            if key == "points":  # mirror x; the maps over the points need no mirroring
                return value * torch.tensor([-1.0, 1.0, 1.0])
            return super().mirror(key, value)

        def train_dataloader(self):
            return self.loader(Spots(self.kind, self.size, 32, 0), self.batch_size, 0, shuffle=True)

        def val_dataloader(self):
            return self.loader(Spots(self.kind, self.size, 12, 1), self.batch_size, 0)

        def test_dataloader(self):
            return self.loader(Spots(self.kind, self.size, 10, 2), self.batch_size, 0)


    class ToyEvaluator(Evaluator):
        def __call__(self, outputs, context: EvaluationContext):
            require(outputs, ("pred", "truth"), "ToyEvaluator")
            return {"error": mean_keypoint_error(outputs["pred"], outputs["truth"])}


    class ToyNet(nn.Module):
        """Same-resolution convolutions for grids, a per-point MLP for clouds: logits (B, K, *map)."""

        def __init__(self, kind: str = "signal", num_keypoints: int = 2):
            super().__init__()
            self.kind = kind
            if kind == "points":
                self.net = nn.Sequential(nn.Linear(3, 16), nn.ReLU(), nn.Linear(16, num_keypoints))
            else:
                conv = nn.Conv1d if kind == "signal" else nn.Conv3d
                self.net = nn.Sequential(conv(1, 8, 3, padding=1), nn.ReLU(), conv(8, num_keypoints, 3, padding=1))

        def forward(self, x):
            return self.net(x).transpose(1, 2) if self.kind == "points" else self.net(x)
''')


def toy_config(folder, kind, method):
    config = {
        "method": method,
        "trainer": {"max_epochs": 2, "accelerator": "cpu", "enable_progress_bar": False,
                    "enable_model_summary": False, "num_sanity_val_steps": 0},
        "model": {"model": {"class_path": "toy_task.ToyNet", "init_args": {"kind": kind}},
                  "evaluator": {"class_path": "toy_task.ToyEvaluator"}, "lr": 0.01,
                  "flip_test": True},  # mirror along x on every grid and on the cloud
        "data": {"class_path": "toy_task.ToyDataModule",
                 "init_args": {"kind": kind, "size": 64 if kind == "points" else (16 if kind == "signal" else 8)}},
    }
    path = folder / f"toy_{kind}.yaml"
    path.write_text(yaml.safe_dump(config))
    return path


@pytest.fixture
def toy_folder(tmp_path, monkeypatch):
    (tmp_path / "toy_task.py").write_text(TOY_TASK)
    monkeypatch.syspath_prepend(str(tmp_path))
    torch.set_num_threads(1)
    return tmp_path


@pytest.mark.parametrize("kind,method", [("signal", "samp_tri"), ("volume", "soft_dr"), ("points", "samp_gau")])
def test_a_new_task_trains_and_tests_through_the_cli(toy_folder, capsys, kind, method):
    config = toy_config(toy_folder, kind, method)
    root = toy_folder / "run"
    main(["fit", "--config", str(config), "--trainer.default_root_dir", str(root)])
    cli = SamplingArgmaxCLI(args=["test", "--config", str(config), "--trainer.default_root_dir", str(root),
                                  "--ckpt_path", "last"])
    assert f"method {method}" in capsys.readouterr().out
    assert cli.trainer.callback_metrics["test/num_samples"] == 10
    assert np.isfinite(float(cli.trainer.callback_metrics["test/error"]))
    assert "val/error" in next((root / "logs").glob("version_*/csv/metrics.csv")).read_text()


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["volume", "points"])
def test_compare_and_its_figures_work_on_volumes_and_point_sets(toy_folder, kind, drawn):
    config = toy_config(toy_folder, kind, "soft")
    # on points the triangular basis is not defined: compare says so and runs the others
    methods = ["soft", "samp_tri", "samp_gau"] if kind == "points" else ["soft", "samp_uni"]
    rows = compare_main(["--config", str(config), "--methods", *methods, "--out", str(toy_folder / "report"),
                         "--num_show", "2", "--trainer.max_epochs", "1"])
    trained = ["soft", "samp_gau"] if kind == "points" else methods
    assert [r["method"] for r in rows] == trained and all(np.isfinite(r["error"]) for r in rows)
    if kind == "points":
        table = (toy_folder / "report" / "table.md").read_text()
        assert "Not defined on this task's point sets (a basis that needs a grid cell): samp_tri." in table
        assert "| error | " in table and " – |" in table  # the samp_tri column is empty, not a number
    for figure in ("maps.png", "predictions.png", "calibration.png"):
        fraction = drawn(toy_folder / "report" / figure)
        # maps: the heat maps; predictions: the keypoint markers; calibration: one curve per method
        assert fraction > (0.005 if figure == "maps.png" else 0.001), (figure, fraction)
    assert json.loads((toy_folder / "report" / "runs" / trained[1] / "seed0" / "result.json").read_text())["task"] \
        == f"toy_{kind}"
