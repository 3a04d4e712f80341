"""The phantom's geometry: analytic shapes in millimetres, and an affine grid that evaluates them.

A shape is `(mask(x, y, z), low corner, high corner)`: the mask says which anatomy points lie
inside, the corners bound it, so that `Grid.block` evaluates it only where it can be.
"""

from __future__ import annotations

import numpy as np


class Grid:
    """Array indices (k, i, j) of one plane's volume mapped affinely to anatomy millimetres.

    Shapes are evaluated only inside the index block that covers their bounding box, which
    keeps small structures (menisci, ligaments) cheap.
    """

    def __init__(self, matrix: np.ndarray, shape: tuple[int, int, int]):
        self.matrix = matrix.astype(np.float64)  # 3 x 4: anatomy = matrix @ (k, i, j, 1)
        self.shape = shape
        self.inverse = np.linalg.inv(np.vstack([self.matrix, [0, 0, 0, 1]]))[:3]

    def block(self, low, high):
        """Index slices covering the anatomy box [low, high], and the anatomy coordinates there."""
        corners = np.array([[x, y, z, 1.0] for x in (low[0], high[0]) for y in (low[1], high[1])
                            for z in (low[2], high[2])])
        index = corners @ self.inverse.T
        lo = np.maximum(np.floor(index.min(0)).astype(int) - 1, 0)
        hi = np.minimum(np.ceil(index.max(0)).astype(int) + 2, self.shape)
        if np.any(hi <= lo):
            return None, None
        k = np.arange(lo[0], hi[0], dtype=np.float32)[:, None, None]
        i = np.arange(lo[1], hi[1], dtype=np.float32)[None, :, None]
        j = np.arange(lo[2], hi[2], dtype=np.float32)[None, None, :]
        m = self.matrix.astype(np.float32)
        coords = tuple(m[a, 0] * k + m[a, 1] * i + m[a, 2] * j + m[a, 3] for a in range(3))
        return tuple(slice(a, b) for a, b in zip(lo, hi)), coords


def ellipsoid(center, radii):
    c, r = np.asarray(center, float), np.asarray(radii, float)

    def mask(x, y, z):
        return ((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2 <= 1.0
    return mask, c - r, c + r


def cylinder_z(center_xy, radii_xy, z_low, z_high):
    """An elliptic cylinder along z between two heights."""
    (cx, cy), (rx, ry) = center_xy, radii_xy

    def mask(x, y, z):
        return (((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 <= 1.0) & (z >= z_low) & (z <= z_high)
    return mask, np.array([cx - rx, cy - ry, z_low]), np.array([cx + rx, cy + ry, z_high])


def capsule(start, end, radius, t_range=(0.0, 1.0)):
    """A round band from `start` to `end` (only the part with t in `t_range`)."""
    a, b = np.asarray(start, float), np.asarray(end, float)
    d = b - a
    length2 = float(d @ d)
    t0, t1 = t_range

    def mask(x, y, z):
        t = ((x - a[0]) * d[0] + (y - a[1]) * d[1] + (z - a[2]) * d[2]) / length2
        inside_t = (t >= t0) & (t <= t1)
        t = np.clip(t, t0, t1)
        dist2 = (x - a[0] - t * d[0]) ** 2 + (y - a[1] - t * d[1]) ** 2 + (z - a[2] - t * d[2]) ** 2
        return inside_t & (dist2 <= radius ** 2)
    p0, p1 = a + t0 * d, a + t1 * d
    return mask, np.minimum(p0, p1) - radius, np.maximum(p0, p1) + radius


def meniscus_shape(center, r_inner, r_outer, height, gap_angle, z_base, sector=None, thickness=None, tilt=0.0):
    """A wedge-shaped C ring; with `sector`, only a thin sheet through it (a tear line).

    `gap_angle` opens the C towards the notch (-x side of a compartment centred at +x, and
    vice versa). A tear is the sheet at height fraction 0.45 (tilted by `tilt` mm per mm of
    radius) through the angular `sector` (radians around +y, the posterior horn).
    """
    cx, cy = center
    toward_notch = -np.sign(cx) if cx != 0 else 1.0

    def mask(x, y, z):
        dx, dy = x - cx, y - cy
        r = np.sqrt(dx * dx + dy * dy)
        fraction = np.clip((r - r_inner) / (r_outer - r_inner), 0.0, 1.0)
        top = z_base + height * fraction
        inside = (r >= r_inner) & (r <= r_outer) & (z >= z_base) & (z <= top)
        angle_to_notch = np.arccos(np.clip(dx * toward_notch / np.maximum(r, 1e-6), -1, 1))
        inside &= angle_to_notch >= gap_angle
        if sector is not None:
            posterior = np.arctan2(dx, dy)  # 0 along +y (posterior)
            inside &= (posterior >= sector[0]) & (posterior <= sector[1])
            sheet = z_base + 0.45 * height * fraction + tilt * (r - r_inner)
            inside &= np.abs(z - sheet) <= thickness / 2
        return inside
    lo = np.array([cx - r_outer, cy - r_outer, z_base])
    hi = np.array([cx + r_outer, cy + r_outer, z_base + height])
    return mask, lo, hi
