"""The procedural OCT B-scans: exact, ordered labels in realistic ranges, deterministic per (seed, split, index)."""

import numpy as np
import pytest
import torch
from sampling_argmax.codecs.base import to_original_coords
from sampling_argmax.data.base import RawInput
from sampling_argmax.data.synthetic_oct import (
    SPLITS,
    SyntheticOCT,
    SyntheticOCTDataModule,
    render_oct_bscan,
)


def test_boundaries_are_ordered_smooth_and_retina_thickness_is_realistic():
    for seed in range(20):
        image, rows = render_oct_bscan(np.random.default_rng(seed), rows=128, width=64)
        assert image.shape == (128, 64) and rows.shape == (9, 64)
        assert np.all(np.diff(rows, axis=0) > 0)  # strictly ordered top to bottom
        assert np.all((rows > 0) & (rows < 127))  # every boundary inside the B-scan
        thickness_um = (rows[8] - rows[0]) * 3.9
        # total retina 200-420 µm, thinnest at the foveal pit (the pit is a real dip, not noise)
        assert 150 < thickness_um.min() < 270 and 280 < thickness_um.max() < 420
        assert thickness_um.max() - thickness_um.min() > 60
        assert np.abs(np.diff(rows, axis=1)).max() < 8  # smooth across neighbouring A-scans


def test_labels_are_where_the_rendered_intensity_steps_are():
    # noise-free: the ILM is where the profile crosses halfway from vitreous to RNFL, within a tenth of a row
    image, rows = render_oct_bscan(np.random.default_rng(3), rows=128, width=64, speckle=np.inf, noise=0.0,
                                   vessels=(0, 0))
    checked = 0
    for c in range(64):
        ilm, rnfl = rows[0, c], rows[1, c]
        if rnfl - ilm < 6 or ilm < 8:
            continue
        low, high = image[:int(ilm) - 3, c].mean(), image[int(rnfl) - 2, c]
        half = (low + high) / 2
        r = int(np.argmax(image[:, c] > half))  # first row above half
        crossing = r - 1 + (half - image[r - 1, c]) / (image[r, c] - image[r - 1, c])
        assert crossing == pytest.approx(ilm, abs=0.1)
        checked += 1
    assert checked > 20


def test_samples_are_deterministic_and_follow_the_oct_batch_layout():
    a, b = SyntheticOCT("test", 4, width=32)[2], SyntheticOCT("test", 4, width=32)[2]
    assert np.array_equal(a["image"].numpy(), b["image"].numpy())
    assert not np.array_equal(a["image"].numpy(), SyntheticOCT("val", 4, width=32)[2]["image"].numpy())
    assert a["image"].shape == (1, 128, 32) and a["target"].shape == (9 * 32, 1)
    # boundary-major keypoints: target k = b·W + c is truth[b, c]
    assert np.allclose(a["target"][:, 0].numpy().reshape(9, 32), a["truth"].numpy(), atol=1e-4)
    dm = SyntheticOCTDataModule(width=32, val_size=4, test_size=4, batch_size=2)
    assert dm.num_keypoints == 288 and dm.input_shape == (1, 128, 32) and dm.map_shape == (128,)
    assert next(iter(dm.test_dataloader()))["row_offset"].shape == (2, 32)


def test_a_rendered_bscan_is_framed_for_predict_as_the_test_split_frames_it(tmp_path):
    dm = SyntheticOCTDataModule(width=16, test_size=2)
    image, truth = render_oct_bscan(np.random.default_rng([0, SPLITS["test"], 1]), 128, 16)
    np.save(tmp_path / "scan.npy", image)
    (raw,) = dm.raw_inputs(tmp_path / "scan.npy")
    sample, item = dm.prepare(raw), dm.splits["test"][1]
    assert torch.equal(sample["image"], item["image"])
    back = to_original_coords(item["target"][None].double(), sample["to_original"][None])[0].numpy()
    assert np.array_equal(back[:, 0], np.tile(np.arange(16), 9))  # (A-scan column, row): crops are the originals
    assert np.allclose(back[:, 1], np.where(item["target_weight"].numpy() > 0, truth.reshape(-1), 0), atol=1e-4)
    with pytest.raises(ValueError, match=r"scan: shape \(128, 20\), but the model reads flattened crops of \(128, 16\)"):
        dm.prepare(RawInput(np.zeros((128, 20), np.float32), "scan"))
