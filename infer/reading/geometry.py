"""Patient geometry shared by the DICOM and NIfTI readers: which plane a stack is, and how to turn it
into an MRNet volume (axes as `registry.PLANE_AXES`, 256 x 256 in-plane, uint8).

Directions are unit vectors in DICOM patient coordinates (LPS: +x left, +y posterior, +z superior).
A stack is an array (slice, a, b) with the direction and spacing of each of its three axes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from ..registry import PLANE_AXES, PLANES, SLICE_SIZE
from .intensity import to_uint8

# A stack whose slice normal is more than this many degrees from every patient axis is called
# oblique and not used: knee series are often 10-20 degrees oblique and still show their plane,
# at 35 degrees two planes begin to mix (cos 35 = 0.82 for the dominant normal component).
OBLIQUE_LIMIT_DEG = 35.0

# The plane whose slices are stacked along each patient axis (x, y, z).
_PLANE_OF_AXIS = {0: "sagittal", 1: "coronal", 2: "axial"}
assert set(_PLANE_OF_AXIS.values()) == set(PLANES)
# Letter of the patient direction an axis points to, for +x, +y, +z and their opposites.
_LETTERS = {(0, 1): "L", (0, -1): "R", (1, 1): "P", (1, -1): "A", (2, 1): "S", (2, -1): "I"}


def unit(vector) -> np.ndarray:
    v = np.asarray(vector, dtype=np.float64)
    return v / np.linalg.norm(v)


def plane_of_normal(normal) -> tuple[str, float]:
    """The plane a slice normal belongs to, and its obliquity: the angle (degrees) between the
    normal and the patient axis it is closest to."""
    n = np.abs(unit(normal))
    axis = int(np.argmax(n))
    return _PLANE_OF_AXIS[axis], float(np.degrees(np.arccos(np.clip(n[axis], -1.0, 1.0))))


def direction_letter(vector) -> str:
    """The patient direction (one of L R P A S I) closest to a vector."""
    v = np.asarray(vector, dtype=np.float64)
    axis = int(np.argmax(np.abs(v)))
    return _LETTERS[(axis, 1 if v[axis] > 0 else -1)]


@dataclass(frozen=True)
class Stack:
    """A volume as acquired: `data` (slice, a, b); `directions[i]` is the unit vector (LPS) that
    increasing index i of the array points to, `spacing[i]` the step in mm along it."""

    data: np.ndarray
    directions: np.ndarray  # 3 x 3, one row per array axis
    spacing: tuple[float, float, float]

    @property
    def plane(self) -> str:
        return plane_of_normal(self.directions[0])[0]

    @property
    def obliquity_deg(self) -> float:
        return plane_of_normal(self.directions[0])[1]

    @property
    def orientation(self) -> str:
        """Letters of where rows, columns and slices run as acquired, e.g. "IPR" for a sagittal
        stack whose image rows run to inferior, columns to posterior and slices to the right."""
        d = self.directions
        return direction_letter(d[1]) + direction_letter(d[2]) + direction_letter(d[0])


def reorient(stack: Stack, plane: str) -> tuple[np.ndarray, tuple[float, float]]:
    """Flip and transpose a stack so that its axes point as close as possible to `PLANE_AXES[plane]`.

    The slice axis stays the slice axis: an oblique stack is never resampled through-plane, its
    in-plane axes are only swapped and flipped. Returns the array (slice, row, col) and the
    (row, col) pixel spacing in mm.
    """
    target = PLANE_AXES[plane]
    wanted = [np.asarray(target.slice, float), np.asarray(target.row, float), np.asarray(target.col, float)]
    d = stack.directions

    def score(order):
        return sum(abs(float(d[axis] @ wanted[i])) for i, axis in enumerate(order))

    order = max([(0, 1, 2), (0, 2, 1)], key=score)
    data = np.transpose(stack.data, order)
    flips = tuple(i for i, axis in enumerate(order) if float(d[axis] @ wanted[i]) < 0)
    if flips:
        data = np.flip(data, axis=flips)
    return data, (stack.spacing[order[1]], stack.spacing[order[2]])


def resample_in_plane(volume: np.ndarray, pixel_mm: tuple[float, float], size: int = SLICE_SIZE) -> np.ndarray:
    """Resample every slice to size x size, keeping the whole field of view and its aspect ratio.

    MRNet images are square fields of view with square pixels. A rectangular field of view is
    centred in the square that holds it and the margin is filled with the volume's minimum
    (background). Downsampling first smooths with a Gaussian of sigma (factor - 1) / 2 input
    pixels, so that 512 -> 256 averages instead of aliasing; interpolation is linear.
    """
    data = np.asarray(volume, dtype=np.float32)
    _, rows, cols = data.shape
    extent = (rows * pixel_mm[0], cols * pixel_mm[1])
    side = max(extent)
    step = side / size  # output pixel size in mm
    # Input pixels per output pixel along each in-plane axis.
    factors = (step / pixel_mm[0], step / pixel_mm[1])
    if rows == cols == size and np.allclose(factors, 1.0):
        return data
    sigma = [0.0] + [max(0.0, (f - 1.0) / 2.0) for f in factors]
    if any(sigma):
        data = ndimage.gaussian_filter(data, sigma=sigma, mode="nearest", truncate=3.0)
    # Centre of output pixel o (in mm from the square's edge) mapped to input index coordinates.
    scale = np.array([1.0, factors[0], factors[1]])
    margin = [(side - e) / 2 for e in extent]
    offset = np.array([0.0,
                       0.5 * factors[0] - margin[0] / pixel_mm[0] - 0.5,
                       0.5 * factors[1] - margin[1] / pixel_mm[1] - 0.5])
    out = ndimage.affine_transform(data, scale, offset=offset, output_shape=(data.shape[0], size, size),
                                   order=1, mode="nearest")
    if any(m > 0 for m in margin):
        centres = (np.arange(size) + 0.5) * step
        inside_rows = (centres >= margin[0]) & (centres <= side - margin[0])
        inside_cols = (centres >= margin[1]) & (centres <= side - margin[1])
        out[:, ~inside_rows, :] = data.min()
        out[:, :, ~inside_cols] = data.min()
    return out


def to_mrnet(stack: Stack, plane: str | None = None) -> np.ndarray:
    """An MRNet volume (uint8, S x 256 x 256, axes as `PLANE_AXES`) from a stack."""
    data, pixel_mm = reorient(stack, plane or stack.plane)
    return to_uint8(resample_in_plane(data, pixel_mm))
