"""Torch views of an MRNet split: one exam plane per item, the tuning hold-out, epoch ordering.

Randomness comes from seeds derived from (run seed, epoch, exam), never from a global or a worker's
RNG, so an epoch is the same whether it runs first time or after a resume, with or without workers.
"""

from __future__ import annotations

import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset, Sampler

from mrnet.infer.dataset import MRNetSplit
from mrnet.infer.registry import TASKS

from .augment import Augmentation


class PlaneDataset(Dataset):
    """Items are (volume float32 (S, H, W) in 0..255, label (1,), index) for one plane and task."""

    def __init__(self, split: MRNetSplit, plane: str, task: str, augment: bool = False):
        self.split, self.plane, self.task, self.augment = split, plane, task, augment
        self.labels = split.labels[task].astype(np.float32)

    def __len__(self) -> int:
        return len(self.split)

    def __getitem__(self, item):
        index, item_seed = item if isinstance(item, tuple) else (item, None)
        volume = torch.from_numpy(np.array(self.split.volume(self.split.ids[index], self.plane), dtype=np.float32))
        if self.augment and item_seed is not None:
            volume = Augmentation.draw(np.random.default_rng(item_seed))(volume)
        return volume, torch.tensor([self.labels[index]]), index


class EpochSampler(Sampler):
    """Yields (index, item seed) pairs: a permutation of `indices` fixed by (seed, epoch)."""

    def __init__(self, indices, seed: int, epoch: int, shuffle: bool = True):
        self.indices = np.asarray(indices)
        self.seed, self.epoch, self.shuffle = seed, epoch, shuffle

    def __iter__(self):
        rng = np.random.default_rng([self.seed, self.epoch])
        order = rng.permutation(self.indices) if self.shuffle else self.indices
        seeds = rng.integers(0, 2**63, len(order))
        return iter(zip(order.tolist(), seeds.tolist()))

    def __len__(self) -> int:
        return len(self.indices)


def loader(dataset: PlaneDataset, sampler=None, workers: int = 0) -> DataLoader:
    """One exam per step (mrnet-baseline's batch size), optionally read ahead by worker processes."""
    return DataLoader(dataset, batch_size=None, sampler=sampler, num_workers=workers,
                      prefetch_factor=4 if workers else None, persistent_workers=False)


def pick_fraction(n: int, fraction: float, seed: int, epoch: int) -> np.ndarray:
    """The exams used in one epoch of adversarial retraining: round(fraction * n), at least one."""
    count = min(n, max(1, int(round(fraction * n))))
    rng = np.random.default_rng([seed, epoch, 1])
    return np.sort(rng.choice(n, size=count, replace=False))


# The tuning split is drawn with this seed whatever a run's own seed: it belongs to the data, so
# replicate seeds of a run are selected, fused and compared on the same exams.
TUNING_SPLIT_SEED = 0


def split_tuning(train: MRNetSplit, fraction: float, seed: int) -> tuple[MRNetSplit, MRNetSplit]:
    """Hold out a stratified tuning split from train (for model selection and fusion).

    Strata are the label combinations (abnormal, acl, meniscus); each contributes its share by the
    largest-remainder rule, so the total is round(fraction * n) and rare combinations still count.
    """
    if not 0 < fraction < 1:
        raise ValueError(f"tuning fraction must be within (0, 1), not {fraction}")
    rng = np.random.default_rng([seed, 2])
    combos = np.stack([train.labels[t] for t in TASKS], axis=1)
    strata: dict[tuple, list[int]] = {}
    for index, combo in enumerate(map(tuple, combos)):
        strata.setdefault(combo, []).append(index)
    total = int(round(fraction * len(train)))
    keys = sorted(strata)
    exact = np.array([fraction * len(strata[k]) for k in keys])
    counts = np.floor(exact).astype(int)
    for k in np.argsort(-(exact - counts), kind="stable")[: total - counts.sum()]:
        counts[k] += 1
    tune = sorted(int(i) for key, count in zip(keys, counts) for i in rng.permutation(strata[key])[:count])
    held_out = set(tune)
    tune_ids = [train.ids[i] for i in tune]
    fit_ids = [exam_id for i, exam_id in enumerate(train.ids) if i not in held_out]
    return train.subset(fit_ids), train.subset(tune_ids)


def class_weights(labels: np.ndarray) -> tuple[float, float]:
    """mrnet-baseline's weights (negative, positive): each class weighted by the other's share."""
    positive_share = float(np.mean(labels))
    return positive_share, 1.0 - positive_share


def weighted_bce(logit: torch.Tensor, target: torch.Tensor, weights: tuple[float, float]) -> torch.Tensor:
    """Class-weighted binary cross-entropy on logits (the loss J of training and of FGSM)."""
    weight = torch.where(target > 0.5, weights[1], weights[0]).to(logit.dtype)
    return torch.nn.functional.binary_cross_entropy_with_logits(logit, target, weight=weight)
