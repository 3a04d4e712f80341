"""A slice with the models' class activation map over it, as an RGB image: what the web demo's
slice viewer shows and what the DICOM Secondary Capture stores. Pure numpy (and Pillow to resize).

The overlay is the positive part of the CAM (evidence for the finding), scaled by its maximum over
the whole volume so that slices compare; below CAM_FLOOR nothing is drawn, above it the colour
grows more opaque up to CAM_OPACITY.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from .registry import SLICE_SIZE

CAM_FLOOR = 0.3
CAM_OPACITY = 0.5


def strongest_slice(cam: np.ndarray) -> int:
    """The slice holding the CAM's largest value: where the evidence for the finding is strongest."""
    return int(np.unravel_index(int(np.argmax(cam)), cam.shape)[0])


def _hot(level: np.ndarray) -> np.ndarray:
    """A black-red-yellow-white colour map for levels in 0..1, as (..., 3) floats in 0..1."""
    return np.stack([np.clip(3 * level, 0, 1), np.clip(3 * level - 1, 0, 1), np.clip(3 * level - 2, 0, 1)], axis=-1)


def upsample_cam(cam_slice: np.ndarray, size: tuple[int, int] = (SLICE_SIZE, SLICE_SIZE)) -> np.ndarray:
    """A (7, 7) map resized bilinearly to an image's (rows, columns)."""
    image = Image.fromarray(np.ascontiguousarray(cam_slice, dtype=np.float32), mode="F")
    return np.asarray(image.resize((size[1], size[0]), Image.Resampling.BILINEAR), dtype=np.float32)


def render_slice(volume: np.ndarray, cam: np.ndarray, index: int, overlay: bool = True) -> np.ndarray:
    """Slice `index` of a uint8 (S, H, W) volume as an RGB uint8 image, with the (S, 7, 7) CAM over it."""
    index = int(np.clip(index, 0, volume.shape[0] - 1))
    gray = np.repeat(volume[index].astype(np.float32)[..., None] / 255.0, 3, axis=-1)
    if not overlay:
        return (gray * 255).round().astype(np.uint8)
    peak = float(cam.max())
    level = np.clip(upsample_cam(cam[index], volume.shape[1:]) / peak, 0, 1) if peak > 0 else np.zeros(
        volume.shape[1:], np.float32)
    alpha = CAM_OPACITY * np.clip((level - CAM_FLOOR) / (1 - CAM_FLOOR), 0, 1)[..., None]
    return ((gray * (1 - alpha) + _hot(level) * alpha) * 255).round().astype(np.uint8)
