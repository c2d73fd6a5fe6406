"""Writers of data files in their official formats, for test fixtures (not part of the package)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from sampling_argmax.codecs.bscan import DEFAULT_PIXEL_UM


def write_vol(path: str | Path, bscans: np.ndarray, pixel_um: float = DEFAULT_PIXEL_UM, scale_x_um: float = 11.0,
              bscan_distance_um: float = 120.0) -> Path:
    """Write raw reflectivities ``bscans`` (N, H, W) in [0, 1] as a Heyex ``.vol`` (eyepy's format definition).

    For test fixtures and for exporting scans of other sources: the header carries the pixel sizes, an empty
    16 x 16 localizer, no layer segmentations. Built from eyepy's ``vol_format`` directly because eyepy 0.21's
    ``HeVolWriter`` cannot encode the examination date (its 64-bit date field gets a float); that one field is
    written as a plain integer here.
    """
    import construct
    from eyepy.io.he.vol_reader import vol_format

    bscans = np.asarray(bscans, dtype=np.float32)
    if bscans.ndim != 3 or min(bscans.shape) == 0:
        raise ValueError(f"bscans of shape {bscans.shape} must be (N, H, W) raw reflectivities")
    fields = [("exam_time" / construct.Int64ul) if sub.name == "exam_time" else sub for sub in vol_format.subcons]
    date = "2000-01-01T00:00:00"
    num, height, width = bscans.shape
    records = [
        dict(bscan_hdr_size=256, start_x=0.0, start_y=i * bscan_distance_um / 1000.0, end_x=width * scale_x_um / 1000.0,
             end_y=i * bscan_distance_um / 1000.0, num_seg=0, quality=30.0, shift=0, iv_transformation=[0.0] * 6,
             layer_segmentations=np.zeros((0, width), np.float32), data=np.ascontiguousarray(bscans[i]))
        for i in range(num)
    ]
    header = dict(size_x=width, size_y=height, n_bscans=num, scale_x=scale_x_um / 1000.0, scale_y=pixel_um / 1000.0,
                  distance=bscan_distance_um / 1000.0, size_x_slo=16, size_y_slo=16, scale_x_slo=0.2, scale_y_slo=0.2,
                  id="sampling-argmax", reference_id="", dob=date, visit_date=date, exam_time=0, grid_type=0,
                  grid_offset=0, grid_type1=0, grid_offset1=0, prog_id="", localizer=np.zeros((16, 16), np.uint8),
                  bscans=records)
    path = Path(path)
    path.write_bytes(construct.Struct(*fields).build(header))
    return path
