"""The figures of a run's report (matplotlib, Agg): learning curves and ROC curves per model."""

from __future__ import annotations

from pathlib import Path

from mrnet.infer.registry import PLANES, TASK_TITLES, TASKS, model_key


def learning_curves(models, baseline, path: Path) -> None:
    """Valid AUC per epoch, one panel per model; a retrained run continues its baseline's curve."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(PLANES), len(TASKS), figsize=(12, 9), sharey=True, squeeze=False)
    for r, plane in enumerate(PLANES):
        for c, task in enumerate(TASKS):
            ax, key = axes[r][c], model_key(plane, task)
            offset = 0
            if baseline and key in baseline:
                rows = [e for e in baseline[key]["epochs"] if e["epoch"] > 0]
                ax.plot([e["epoch"] for e in rows], [e["valid_auc"] for e in rows], "o-", ms=3, color="tab:blue",
                        label="baseline")
                offset = max((e["epoch"] for e in rows), default=0)
            if key in models:
                rows = models[key]["epochs"]
                is_adv = models[key]["summary"]["mode"] == "advtrain"
                ax.plot([offset * is_adv + e["epoch"] for e in rows], [e["valid_auc"] for e in rows], "o-", ms=3,
                        color="tab:red" if is_adv else "tab:blue", label="FGSM retrained" if is_adv else "baseline")
            ax.set_title(f"{plane} · {TASK_TITLES[task]}", fontsize=10)
            ax.set_ylim(0.3, 1.02)
            ax.grid(alpha=0.3)
            if r == len(PLANES) - 1:
                ax.set_xlabel("epoch")
            if c == 0:
                ax.set_ylabel("valid AUC")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="upper right")
    fig.suptitle("Validation AUC per epoch")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)


def roc_curves(models, baseline, path: Path) -> None:
    """ROC curves on the valid split, one panel per model, baseline beside retrained."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import roc_curve

    fig, axes = plt.subplots(len(PLANES), len(TASKS), figsize=(12, 12), squeeze=False)
    for r, plane in enumerate(PLANES):
        for c, task in enumerate(TASKS):
            ax, key = axes[r][c], model_key(plane, task)
            curves = []
            if baseline and key in baseline:
                curves.append(("baseline", baseline[key], "tab:blue"))
            if key in models:
                adv = models[key]["summary"]["mode"] == "advtrain"
                curves.append(("FGSM retrained" if adv else "baseline", models[key], "tab:red" if adv else "tab:blue"))
            for name, model, colour in curves:
                valid = model["predictions"]["valid"]
                if valid["label"].min() == valid["label"].max():
                    continue
                fpr, tpr, _ = roc_curve(valid["label"], valid["probability"])
                ax.plot(fpr, tpr, color=colour, label=f"{name} (AUC {model['summary']['valid']['auc']:.3f})")
            ax.plot([0, 1], [0, 1], ":", color="grey")
            ax.set_title(f"{plane} · {TASK_TITLES[task]}", fontsize=10)
            ax.set_aspect("equal")
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7, loc="lower right")
            if r == len(PLANES) - 1:
                ax.set_xlabel("1 - specificity")
            if c == 0:
                ax.set_ylabel("sensitivity")
    fig.suptitle("ROC curves on the valid split")
    fig.tight_layout()
    fig.savefig(path, dpi=70)
    plt.close(fig)
