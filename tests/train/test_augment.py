"""mrnet-baseline augmentation: one transform per exam, the same on every slice."""

from __future__ import annotations

import numpy as np
import torch

from mrnet.train.augment import MAX_ROTATION_DEG, MAX_SHIFT_PX, Augmentation


def test_every_slice_gets_the_same_transform():
    rng = np.random.default_rng(0)
    volume = torch.from_numpy(rng.uniform(0, 255, (6, 256, 256)).astype(np.float32))
    for seed in range(20):
        augmentation = Augmentation.draw(np.random.default_rng(seed))
        whole = augmentation(volume)
        for k in range(volume.shape[0]):
            assert torch.allclose(whole[k], augmentation(volume[k:k + 1])[0], atol=1e-4)


def test_each_part_fires_about_half_the_time_within_its_range():
    draws = [Augmentation.draw(np.random.default_rng(seed)) for seed in range(2000)]
    assert 0.45 < np.mean([d.flip for d in draws]) < 0.55
    assert 0.45 < np.mean([d.angle != 0 for d in draws]) < 0.55
    assert 0.45 < np.mean([d.shift != (0, 0) for d in draws]) < 0.55
    assert max(abs(d.angle) for d in draws) <= MAX_ROTATION_DEG
    assert max(max(abs(s) for s in d.shift) for d in draws) <= MAX_SHIFT_PX
    assert all(isinstance(s, int) for d in draws for s in d.shift)


def test_shift_and_flip_move_pixels_exactly():
    volume = torch.zeros(2, 256, 256)
    volume[:, 100, 50] = 255
    shifted = Augmentation(shift=(10, -5))(volume)
    assert shifted[:, 95, 60].tolist() == [255, 255]
    flipped = Augmentation(flip=True)(volume)
    assert flipped[:, 100, 205].tolist() == [255, 255]
