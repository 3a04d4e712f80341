"""What can be said when retrained models are set against their baseline: mean AUCs over several
models or tasks, their bootstrap CIs, and the difference across replicate seeds.

Every statistic here is a mean over *items* (the nine plane models, or the three fused tasks: the
MRNet leaderboard ranks the mean of the three fused task AUCs) of an AUC on the same exams. Exams
are resampled jointly for every item, so the correlation between items is kept.

The two-level bootstrap answers "did retraining help?" with both sources of variation: a retrained
model differs from its baseline by the method, by the seed it was trained with, and by the exams it
is tested on. Each resample draws the seeds with replacement, and for each seed drawn the exams
with replacement (the same exams for baseline and retrained: paired); the statistic is the mean
over the drawn seeds of mean-over-items AUC(retrained) - AUC(baseline). The percentile interval and
a two-sided p (twice the smaller tail beyond zero) come from those resamples. With one seed it is
the paired bootstrap over exams.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .metrics import BOOTSTRAP_SAMPLES, _auc_rows, auc

METHOD = (f"two-level bootstrap ({BOOTSTRAP_SAMPLES} resamples: replicate seeds with replacement, then the "
          "valid exams with replacement, paired), percentile interval, two-sided p")


@dataclass(frozen=True)
class Items:
    """One replicate's predictions on the same exams: per item, the labels and the scores."""

    labels: list[np.ndarray]
    scores: list[np.ndarray]

    def usable(self) -> list[int]:
        """Items whose labels hold both classes (an AUC exists)."""
        return [k for k, y in enumerate(self.labels) if y.size and y.min() != y.max()]


def mean_auc(items: Items) -> float:
    """The mean over items of the AUC (items with one class only are left out)."""
    values = [auc(items.labels[k], items.scores[k]) for k in items.usable()]
    return float(np.mean(values)) if values else float("nan")


def _resamples(items: Items, keep: list[int], samples: int, rng: np.random.Generator) -> np.ndarray:
    """Rows of exam indices; rows where some kept item lost a class are dropped."""
    n = items.labels[0].size
    index = rng.integers(0, n, (samples, n))
    ok = np.ones(samples, dtype=bool)
    for k in keep:
        picked = items.labels[k][index]
        ok &= picked.min(axis=1) != picked.max(axis=1)
    return index[ok]


def _mean_auc_rows(items: Items, keep: list[int], index: np.ndarray) -> np.ndarray:
    return np.mean([_auc_rows(items.labels[k][index], items.scores[k][index]) for k in keep], axis=0)


def mean_auc_ci(items: Items, level: float = 0.95, samples: int = BOOTSTRAP_SAMPLES,
                seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap CI of the mean-over-items AUC, exams resampled jointly."""
    keep = items.usable()
    if not keep:
        return float("nan"), float("nan")
    values = _mean_auc_rows(items, keep, _resamples(items, keep, samples, np.random.default_rng(seed)))
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(values, [tail, 100 - tail])
    return float(low), float(high)


def compare_replicates(baseline: list[Items], retrained: list[Items], level: float = 0.95,
                       samples: int = BOOTSTRAP_SAMPLES, seed: int = 0) -> dict:
    """Retrained against baseline over replicate seeds (one `Items` per seed, the same seed at the
    same position in both lists, the same exams and items within a seed).

    Returns the mean difference, its interval and p (two-level bootstrap), the difference per seed
    and its standard deviation across seeds.
    """
    if len(baseline) != len(retrained) or not baseline:
        raise ValueError("one baseline and one retrained replicate per seed")
    keep = sorted(set.intersection(*(set(b.usable()) for b in baseline)))
    nan = float("nan")
    if not keep:
        return {"delta": nan, "low": nan, "high": nan, "p_value": nan, "per_seed": [], "sd_across_seeds": nan,
                "seeds": len(baseline), "method": METHOD}
    rng = np.random.default_rng(seed)
    seeds = len(baseline)
    # For every seed, `seeds * samples` exam resamples and the difference on each; a bootstrap draw
    # then takes, for each seed it picks, a resample not used by another pick of the same draw.
    per_seed_draws = []
    for base, adv in zip(baseline, retrained):
        index = _resamples(base, keep, seeds * samples, rng)
        per_seed_draws.append(_mean_auc_rows(adv, keep, index) - _mean_auc_rows(base, keep, index))
    usable = min(len(d) for d in per_seed_draws) // seeds
    differences = np.stack([d[: usable * seeds] for d in per_seed_draws])  # (seeds, usable * seeds)
    picks = rng.integers(0, seeds, (usable, seeds))
    columns = np.arange(usable * seeds).reshape(usable, seeds)
    draws = differences[picks, columns].mean(axis=1)
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(draws, [tail, 100 - tail])
    per_seed = [mean_auc(Items([a.labels[k] for k in keep], [a.scores[k] for k in keep]))
                - mean_auc(Items([b.labels[k] for k in keep], [b.scores[k] for k in keep]))
                for b, a in zip(baseline, retrained)]
    return {"delta": float(np.mean(per_seed)), "low": float(low), "high": float(high),
            "p_value": float(min(1.0, 2 * min(np.mean(draws <= 0), np.mean(draws >= 0)))),
            "per_seed": per_seed, "sd_across_seeds": float(np.std(per_seed, ddof=1)) if seeds > 1 else nan,
            "seeds": seeds, "method": METHOD}
