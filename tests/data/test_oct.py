"""MSHC OCT data: .vol reading (eyepy), delineations, the spline of the dataset's tools, flattening and its exact
round trip, on the real samples in ../shared/data/oct and on .vol/.mat files written here in the official layout."""

import numpy as np
import pytest
import scipy.io as sio
import torch
from sampling_argmax.codecs.base import to_original_coords
from sampling_argmax.data.base import RawInput
from sampling_argmax.data.oct import MSHC_SPLIT, MSHCDataModule, control_points_to_rows, read_delineation, read_vol
from writers import write_vol
from sampling_argmax.codecs.bscan import display_intensity, estimate_bruchs_membrane, flatten_crop

STEM = "_spectralis_macula_v1_s1_R"


@pytest.fixture(scope="module")
def spectralis(shared_data):
    """The real Spectralis B-scan: raw reflectivity (496, 768), 9 manual boundaries (0-based rows), µm per row."""
    folder = shared_data / "oct" / "spectralis-circular-scan"
    scan = sio.loadmat(folder / "circularScan.mat")
    rows = sio.loadmat(folder / "circularScan_0_coordinates.mat")["interpolation"] - 1.0  # MATLAB rows are 1-based
    return scan["B0"].astype(np.float32), rows, float(scan["ScaleZ"].item()) * 1000.0


def write_fixture(folder, spectralis, subjects, layout="bd_pts", num_bscans=1):
    """MSHC layout (vol/, delineation/) with the real scan as each subject's volume and its boundaries as the delineation."""
    raw, rows, pixel_um = spectralis
    (folder / "vol").mkdir(parents=True, exist_ok=True)
    (folder / "delineation").mkdir(exist_ok=True)
    for subject in subjects:
        write_vol(folder / "vol" / f"{subject}{STEM}.vol", np.stack([raw] * num_bscans), pixel_um)
        if layout == "bd_pts":  # (A-scans, B-scans, 11), 1-based rows, cells 3 and 11 unused (zeros)
            dense = np.zeros((rows.shape[1], num_bscans, 11))
            dense[:, :, [0, 1, 3, 4, 5, 6, 7, 8, 9]] = (rows.T + 1.0)[:, None, :]
            sio.savemat(folder / "delineation" / f"{subject}{STEM}.mat", {"bd_pts": dense})
        else:  # control points every 16 A-scans (and the last), 1-based, in an object array of 11 cells
            cells = np.empty((num_bscans, 11), dtype=object)
            for index in np.ndindex(cells.shape):
                cells[index] = np.zeros((0, 0))
            x = np.unique(np.r_[np.arange(0, rows.shape[1], 16), rows.shape[1] - 1])
            for i in range(num_bscans):
                for b, cell in enumerate([0, 1, 3, 4, 5, 6, 7, 8, 9]):
                    cells[i, cell] = np.stack([x + 1.0, rows[b, x] + 1.0], 1)
            sio.savemat(folder / "delineation" / f"{subject}{STEM}.mat", {"control_pts": cells})
    return folder


# ---------------------------------------------------------------------------------------------- control points


def test_spline_is_the_natural_cubic_spline_in_the_point_index():
    # knots at x = 1, 51, 101 (1-based): natural spline with unit parameter spacing; at x = 26 (t = 0.5 in the
    # first segment) S = (y0 + y1)/2 - M1/16 with M1 = 1.5 (y0 - 2 y1 + y2) = -30 -> 106.875 (1-based row)
    rows = control_points_to_rows(np.array([[101.0, 100.0], [1.0, 100.0], [51.0, 110.0]]), num_ascans=120)
    assert rows[[0, 50, 100]].tolist() == [99.0, 109.0, 99.0]  # through the points, 0-based
    assert rows[25] == pytest.approx(106.875 - 1.0)
    assert np.all(rows[100:] == 99.0)  # held beyond the last point (nearest extrapolation)


def test_mshc_delineation_example_becomes_ordered_rows_through_its_control_points(shared_data):
    path = shared_data / "oct" / "mshc-delineation-example" / "example.mat"
    rows = read_delineation(path, num_bscans=49, num_ascans=1024)
    assert rows.shape == (49, 9, 1024) and np.isfinite(rows).all()
    assert np.all(np.diff(rows, axis=1) >= 0)  # each boundary on or below the one above
    cells = sio.loadmat(path)["control_pts"]
    used = [0, 1, 3, 4, 5, 6, 7, 8, 9]  # cells 3 and 11 (1-based) are empty
    assert cells[0, 2].size == 0 and cells[0, 10].size == 0
    # the first boundary is never clamped: it passes through every control point (cell 1's last point is an
    # unsorted extra at x = 763, which the reader sorts in)
    for i in (0, 24, 48):
        points = cells[i, used[0]]
        assert np.allclose(rows[i, 0, points[:, 0].astype(int) - 1], points[:, 1] - 1.0)


def test_control_points_of_the_real_boundaries_reproduce_them(tmp_path, spectralis):
    # the manual boundaries sampled every 16 A-scans, splined back: within a row almost everywhere
    write_fixture(tmp_path, spectralis, ["hc01"], layout="control_pts")
    rows = read_delineation(tmp_path / "delineation" / f"hc01{STEM}.mat", num_bscans=1, num_ascans=768)[0]
    error = np.abs(rows - spectralis[1])
    assert np.median(error) < 0.3 and np.percentile(error, 95) < 1.5


# ---------------------------------------------------------------------------------------------- .vol and preprocessing


def test_vol_written_by_eyepy_format_reads_back_with_the_header_pixel_size(tmp_path, spectralis):
    raw, _, pixel_um = spectralis
    path = write_vol(tmp_path / "scan.vol", np.stack([raw, raw[::-1]]), pixel_um)
    scan = read_vol(path)
    assert scan.bscans.shape == (2, 496, 768)
    assert np.array_equal(scan.bscans[0], raw) and np.array_equal(scan.bscans[1], raw[::-1])
    assert scan.pixel_um == pytest.approx(3.8717, abs=1e-4)  # ScaleZ of the real scan, not the 3.9 default


def test_real_scan_flattens_to_bm_and_round_trips_exactly(spectralis):
    raw, truth, pixel_um = spectralis
    image = display_intensity(raw)
    bm = estimate_bruchs_membrane(image, pixel_um)
    assert np.abs(bm - truth[8]).mean() < 3.0  # the image-based BM is close to the manual one
    flat = flatten_crop(image, pixel_um, rows=128, bottom_margin_um=60.0)
    crop = flat.to_crop(truth)
    # BM lands near row 127 - 60 µm = 112 everywhere, although it spans rows 171..318 in the B-scan
    assert np.ptp(truth[8]) > 140 and np.abs(crop[8] - 112).max() < 8
    assert np.all((crop >= -0.5) & (crop <= 127.5))  # all 9 boundaries inside the 128-row crop
    assert np.array_equal(flat.to_original(crop), truth)  # exact: whole-row shifts
    # the crop's pixels are the original pixels at the shifted rows
    columns = np.arange(0, 768, 37)
    for r in (0, 60, 127):
        assert np.array_equal(flat.image[r, columns], image[r + flat.row_offset[columns].astype(int), columns]
                              .astype(np.float32))


# ---------------------------------------------------------------------------------------------- data module


def test_official_split_is_the_papers():
    assert len(MSHC_SPLIT["test"]) == 20 and MSHC_SPLIT["test"][:2] == ("hc01", "hc02")
    assert set(MSHC_SPLIT["val"]) == {"hc09", "ms13", "ms14"} and len(MSHC_SPLIT["train"]) == 12
    everyone = sum(MSHC_SPLIT.values(), ())
    assert len(set(everyone)) == len(everyone) == 35


def test_mshc_module_samples_carry_targets_that_map_back_to_the_truth(tmp_path, spectralis):
    root = write_fixture(tmp_path, spectralis, ["hc01"], num_bscans=2)
    dm = MSHCDataModule(str(root), width=768, column_step=8, test_subjects=["hc01"])
    assert dm.input_shape == (1, 128, 96) and dm.map_shape == (128,) and dm.num_keypoints == 9 * 96
    batch = next(iter(dm.test_dataloader()))
    assert batch["image"].shape == (2, 1, 128, 96) and batch["target"].shape == (2, 9 * 96, 1)
    truth = spectralis[1][:, ::8]
    assert np.allclose(batch["truth"][0].numpy(), truth)
    # target rows (boundary-major, k = b·W + c) + the column's offset = the original rows
    back = batch["target"][0, :, 0].double().reshape(9, 96) + batch["row_offset"][0][None]
    assert np.allclose(back.numpy(), truth, atol=1e-4) and bool(batch["target_weight"].all())
    assert float(batch["pixel_um"][0]) == pytest.approx(3.8717, abs=1e-4)
    assert batch["bscan"].tolist() == [0, 1]


# ---------------------------------------------------------------------------------------------- predict on raw files


def test_a_vol_file_predicts_per_bscan_framed_exactly_as_the_test_split(tmp_path, spectralis):
    root = write_fixture(tmp_path, spectralis, ["hc01"], num_bscans=2)
    dm = MSHCDataModule(str(root), width=768, column_step=8, test_subjects=["hc01"])
    vol = root / "vol" / f"hc01{STEM}.vol"
    raws = dm.raw_inputs(root / "vol")  # a folder: its .vol stands for its 2 B-scans
    assert [r.name for r in raws] == [f"{vol}:b0", f"{vol}:b1"] and raws[1].extra == {"bscan": 1}
    sample = dm.prepare(raws[1])
    item = dm.dataset("test")[1]
    assert torch.equal(sample["image"], item["image"])  # bit for bit: what test scores is what predict sees
    assert sample["pixel_um"] == pytest.approx(3.8717, abs=1e-4)
    # keypoint b·W' + c: a crop row -> (A-scan column, original row); the targets land on the manual rows
    assert sample["to_original"].shape == (9 * 96, 3, 2)
    back = to_original_coords(item["target"][None].double(), sample["to_original"][None])[0].numpy()
    columns = np.tile(np.arange(0, 768, 8), 9)
    assert np.array_equal(back[:, 0], columns)
    assert np.allclose(back[:, 1], spectralis[1][:, ::8].reshape(-1), atol=1e-4)
    assert dm.keypoint_names[:2] == ["ILM@0", "ILM@8"] and dm.keypoint_names[-1] == "BM@760"
    # the B-scan as 16-bit grey levels (a Heyex export): the same framing up to the rounding of a few columns'
    # BM estimate (a whole row)
    grey = np.round(display_intensity(spectralis[0]) * 65535).astype(np.uint16)
    from_png = dm.prepare(RawInput(grey, "export"))
    shift = (from_png["to_original"] - sample["to_original"])[:, 1, 1].abs()
    assert float(shift.max()) <= 1 and float((shift == 0).double().mean()) > 0.8  # 0.885 measured
    same = (from_png["image"] - sample["image"]).abs()[0][:, (shift[:96] == 0).numpy()]
    assert float(same.max()) < 0.01
    assert dm.display(raws[0]).shape == (496, 768, 3)


def test_raw_bscans_that_cannot_be_framed_are_named_with_the_fix(tmp_path, spectralis):
    root = write_fixture(tmp_path, spectralis, ["hc01"], num_bscans=2)
    dm = MSHCDataModule(str(root), width=1024, test_subjects=["hc01"])
    vol = root / "vol" / f"hc01{STEM}.vol"
    with pytest.raises(ValueError, match=r"b0: 768 A-scans wide, but the model reads B-scans of 1024; resample"):
        dm.prepare(dm.raw_inputs(vol)[0])
    with pytest.raises(ValueError, match=r"the volume holds 2 B-scans; give the file to `predict --input`"):
        dm.prepare(RawInput(vol, str(vol)))
    broken = tmp_path / "broken.vol"
    broken.write_bytes(vol.read_bytes()[:100_000])
    (raw,) = dm.raw_inputs(broken)  # unreadable: one input that fails on its own row
    with pytest.raises(ValueError, match=r"broken\.vol: not a readable Heidelberg"):
        dm.prepare(raw)
    with pytest.raises(ValueError, match=r"colour: expected a 2D array"):
        dm.prepare(RawInput(np.zeros((4, 4, 3), np.float32), "colour"))


# ---------------------------------------------------------------------------------------------- bad files


def test_truncated_vol_is_a_clear_error_naming_the_file(tmp_path, spectralis):
    path = write_vol(tmp_path / "scan.vol", spectralis[0][None], spectralis[2])
    path.write_bytes(path.read_bytes()[:100_000])
    with pytest.raises(ValueError, match=r"scan\.vol: not a readable Heidelberg \.vol.*truncated"):
        read_vol(path)
    with pytest.raises(FileNotFoundError, match="missing.vol"):
        read_vol(tmp_path / "missing.vol")


def test_bad_delineations_are_clear_errors_naming_the_file(tmp_path):
    sio.savemat(tmp_path / "neither.mat", {"segmode": np.ones((1, 1))})
    with pytest.raises(ValueError, match=r"neither\.mat: holds neither 'control_pts' nor 'bd_pts'.*segmode"):
        read_delineation(tmp_path / "neither.mat")
    sio.savemat(tmp_path / "seven.mat", {"bd_pts": np.ones((768, 1, 7))})
    with pytest.raises(ValueError, match=r"seven\.mat: bd_pts has shape \(768, 1, 7\)"):
        read_delineation(tmp_path / "seven.mat")
    sio.savemat(tmp_path / "nine.mat", {"bd_pts": np.ones((768, 3, 9))})
    with pytest.raises(ValueError, match=r"nine\.mat: delineates 3 B-scans but its volume has 49"):
        read_delineation(tmp_path / "nine.mat", num_bscans=49)
    (tmp_path / "text.mat").write_text("not matlab")
    with pytest.raises(ValueError, match=r"text\.mat: not a readable MATLAB"):
        read_delineation(tmp_path / "text.mat")


def test_missing_delineation_and_missing_subjects_are_named(tmp_path, spectralis):
    root = write_fixture(tmp_path, spectralis, ["hc01"])
    (root / "delineation" / f"hc01{STEM}.mat").unlink()
    with pytest.raises(FileNotFoundError, match=rf"hc01{STEM}\.vol: its delineation"):
        MSHCDataModule(str(root), width=768, test_subjects=["hc01"]).setup("test")
    root = write_fixture(tmp_path / "b", spectralis, ["hc01"])
    with pytest.raises(FileNotFoundError, match=r"test split needs subjects \['hc02'\]"):
        MSHCDataModule(str(root), width=768, test_subjects=["hc01", "hc02"]).setup("test")
    with pytest.raises(ValueError, match=r"768 A-scans wide but the data module expects width=1024"):
        MSHCDataModule(str(root), test_subjects=["hc01"]).setup("test")


def test_missing_data_folder_is_named_when_the_data_is_needed(tmp_path, monkeypatch):
    monkeypatch.delenv("SAMPLING_ARGMAX_DATA", raising=False)
    dm = MSHCDataModule(str(tmp_path / "nowhere"))  # configs build without the data ...
    assert dm.input_shape == (1, 128, 1024)
    with pytest.raises(FileNotFoundError, match=r"nowhere does not exist; point --data.data_root"):
        dm.setup("test")  # ... and say where it is missing once it is read
