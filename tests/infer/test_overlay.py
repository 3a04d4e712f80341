"""The CAM overlay (`mrnet.infer.overlay`): what the web demo's slice viewer and the DICOM
Secondary Capture draw."""

from __future__ import annotations

import numpy as np

from mrnet.infer import overlay
from mrnet.infer.registry import SLICE_SIZE


def test_the_viewer_opens_at_the_strongest_evidence_and_draws_it_there():
    volume = np.full((5, SLICE_SIZE, SLICE_SIZE), 100, np.uint8)
    cam = np.full((5, 7, 7), -1.0, np.float32)
    cam[3, 3, 3] = 2.0  # the evidence: slice 3, image centre
    cam[1, 0, 0] = 1.2  # weaker evidence on slice 1, top left
    assert overlay.strongest_slice(cam) == 3

    plain = overlay.render_slice(volume, cam, 3, overlay=False)
    assert plain.shape == (SLICE_SIZE, SLICE_SIZE, 3) and plain.dtype == np.uint8
    assert (plain == 100).all()
    hot = overlay.render_slice(volume, cam, 3, overlay=True).astype(int)
    centre, corner = hot[SLICE_SIZE // 2, SLICE_SIZE // 2], hot[0, 0]
    assert centre[0] > 100 and centre[0] > centre[2]  # red-to-yellow over grey
    assert (corner == 100).all()  # negative evidence is not drawn
    # Slice 1's weaker evidence shows, less than slice 3's: both share the volume's scale.
    assert 100 < overlay.render_slice(volume, cam, 1)[0, 0, 0] < centre[0]


def test_a_map_without_positive_evidence_leaves_the_slice_as_it_is():
    volume = np.random.default_rng(0).integers(0, 256, (3, 32, 32), dtype=np.uint8)
    cam = -np.ones((3, 7, 7), np.float32)
    np.testing.assert_array_equal(overlay.render_slice(volume, cam, 1)[..., 0], volume[1])


def test_cam_upsampling_keeps_the_peak_where_it_was():
    cam = np.zeros((7, 7), np.float32)
    cam[1, 5] = 1.0
    big = overlay.upsample_cam(cam)
    assert big.shape == (SLICE_SIZE, SLICE_SIZE)
    row, col = np.unravel_index(np.argmax(big), big.shape)
    assert abs(row - 1.5 * SLICE_SIZE / 7) < SLICE_SIZE / 14 and abs(col - 5.5 * SLICE_SIZE / 7) < SLICE_SIZE / 14
