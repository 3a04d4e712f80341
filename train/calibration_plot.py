"""Reliability diagrams of a run: one grid, the nine plane models (raw and Platt-scaled) and the
fused tasks, on the valid split."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrnet.infer.registry import PLANES, TASK_TITLES, TASKS, model_key


def _curve(ax, labels, probabilities, bins: int, **style) -> None:
    """Observed rate against mean probability per non-empty bin (scikit-learn's calibration_curve)."""
    from sklearn.calibration import calibration_curve

    if len(labels) == 0:
        return
    observed, predicted = calibration_curve(labels, probabilities, n_bins=bins, strategy="uniform")
    ax.plot(predicted, observed, **style)


def plot_reliability(models: dict, predictions: dict[str, dict[str, np.ndarray]], fused: dict, path: Path,
                     bins: int) -> None:
    """`models`: key -> ModelCalibration; `predictions`: key -> the model's valid predictions;
    `fused`: task -> FusedValid. Writes a (planes + 1) x tasks grid of reliability diagrams."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from scipy.special import expit as sigmoid

    rows = [*PLANES, "fused"]
    fig, axes = plt.subplots(len(rows), len(TASKS), figsize=(11, 14), squeeze=False)
    for r, row in enumerate(rows):
        for c, task in enumerate(TASKS):
            ax = axes[r][c]
            ax.plot([0, 1], [0, 1], ":", color="grey")
            key = model_key(row, task)
            if row == "fused" and task in fused:
                f = fused[task]
                _curve(ax, f.labels, sigmoid(f.logits), bins, marker="o", ms=4, color="tab:purple",
                       label="fused (logistic regression)")
                ax.set_title(f"fused · {TASK_TITLES[task]}: ECE {f.metrics['ece']:.3f}", fontsize=9)
            elif key in models:
                m, valid = models[key], predictions[key]
                _curve(ax, valid["label"], sigmoid(valid["logit"]), bins, marker="o", ms=4, color="tab:blue",
                       label="raw sigmoid")
                _curve(ax, valid["label"], sigmoid(m.platt.a * valid["logit"] + m.platt.b), bins, marker="s",
                       ms=4, color="tab:red", label="Platt-scaled")
                ax.set_title(f"{row} · {TASK_TITLES[task]}: ECE {m.raw['ece']:.3f} → {m.calibrated['ece']:.3f}",
                             fontsize=9)
            else:
                ax.set_title(f"{row} · {TASK_TITLES[task]}: not in this run", fontsize=9)
            ax.set_xlim(0, 1)
            ax.set_ylim(-0.02, 1.02)
            ax.set_aspect("equal")
            ax.grid(alpha=0.3)
            if r == len(rows) - 1:
                ax.set_xlabel("mean predicted probability")
            if c == 0:
                ax.set_ylabel("observed rate")
    handles, labels = [], []
    for ax in (axes[0][0], axes[-1][0]):
        for handle, label in zip(*ax.get_legend_handles_labels()):
            if label not in labels:
                handles.append(handle)
                labels.append(label)
    if handles:
        fig.legend(handles, labels, loc="upper left")
    fig.suptitle(f"Reliability on the valid split ({bins} equal-width bins; empty bins not drawn)")
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(path, dpi=70)
    plt.close(fig)
