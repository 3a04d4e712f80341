"""mrnet-baseline's augmentation: one random shift, rotation and flip per exam, applied to every slice."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torchvision.transforms.v2 import InterpolationMode
from torchvision.transforms.v2 import functional as F

MAX_SHIFT_PX = 25
MAX_ROTATION_DEG = 25.0
P_EACH = 0.5


@dataclass(frozen=True)
class Augmentation:
    """The transform drawn for one exam. Each part fires with p = 0.5."""

    shift: tuple[int, int] = (0, 0)  # (columns, rows), whole pixels
    angle: float = 0.0
    flip: bool = False

    @staticmethod
    def draw(rng: np.random.Generator) -> "Augmentation":
        shift = tuple(int(v) for v in rng.integers(-MAX_SHIFT_PX, MAX_SHIFT_PX + 1, 2))
        angle = float(rng.uniform(-MAX_ROTATION_DEG, MAX_ROTATION_DEG))
        fire = rng.random(3) < P_EACH
        return Augmentation(shift=shift if fire[0] else (0, 0), angle=angle if fire[1] else 0.0,
                            flip=bool(fire[2]))

    def __call__(self, volume: torch.Tensor) -> torch.Tensor:
        """(S, H, W) float -> the same transform on every slice (slices ride along as channels)."""
        if self.angle or self.shift != (0, 0):
            volume = F.affine(volume, angle=self.angle, translate=list(self.shift), scale=1.0, shear=[0.0, 0.0],
                              interpolation=InterpolationMode.BILINEAR, fill=0.0)
        if self.flip:
            volume = F.horizontal_flip(volume)
        return volume
