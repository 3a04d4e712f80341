"""What a run reports: report.md, learning curves, ROC curves, and the paper's Table 2 for a sweep."""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from mrnet.infer.errors import InputError
from mrnet.infer.registry import NOT_FOR_CLINICAL_USE, PLANES, TASK_TITLES, TASKS, model_key

from . import metrics
from .checkpoint import save_text
from .robustness_report import section as robustness_section
from .rundir import RunFolder

METRICS = ("auc", "accuracy", "sensitivity", "specificity")


def _fmt(value, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def load_models(run_dir: str | Path) -> dict[str, dict]:
    """Per model key: its summary (done.json), per-epoch metrics and predictions, for finished models."""
    return {key: {"summary": m.summary, "epochs": m.epochs, "predictions": m.predictions}
            for key, m in RunFolder(run_dir).finished_models().items()}


def mean_metrics(models: dict[str, dict], split: str = "valid") -> dict[str, float]:
    return {m: float(np.nanmean([v["summary"][split][m] for v in models.values()])) for m in METRICS}


def compare(models: dict[str, dict], baseline: dict[str, dict], seed: int = 0) -> dict[str, dict]:
    """Paired bootstrap of the valid AUC, retrained against baseline, on the same exams."""
    out = {}
    for key, model in models.items():
        if key not in baseline:
            continue
        a, b = baseline[key]["predictions"]["valid"], model["predictions"]["valid"]
        if list(a["exam_id"]) != list(b["exam_id"]):
            raise InputError("BASELINE_MISMATCH", f"{key}: the baseline's and the retrained model's predictions "
                             "cover different exams")
        out[key] = metrics.paired_bootstrap(a["label"], a["probability"], b["probability"], seed=seed)
    return out


def _plot_learning_curves(models, baseline, path: Path) -> None:
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


def _plot_roc(models, baseline, path: Path) -> None:
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


def write_run_report(run_dir: str | Path) -> Path:
    """report.md, learning_curves.png and roc.png for a run (against its baseline for an advtrain run)."""
    run_dir = Path(run_dir)
    run = RunFolder(run_dir).record()
    models = load_models(run_dir)
    baseline_dir = run.spec.from_run
    baseline = load_models(baseline_dir) if run.kind == "advtrain" and baseline_dir else None
    comparison = compare(models, baseline, seed=run.spec.seed) if baseline else {}
    _plot_learning_curves(models, baseline, run_dir / "learning_curves.png")
    _plot_roc(models, baseline, run_dir / "roc.png")

    config = run.spec.identity()
    lines = [f"# MRNet {'FGSM retraining' if baseline else 'baseline'} report", "",
             f"**{NOT_FOR_CLINICAL_USE}**", ""]
    if run.synthetic_data:
        lines += ["> Trained and evaluated on a **synthetic knee phantom**: these are demo weights and demo "
                  "numbers, not evidence about real knees.", ""]
    if config["select_on"] == "valid":
        lines += ["> **Biased selection**: models were selected on the valid split, which is also the test "
                  "split here (the protocol of mrnet-baseline and the seed paper). The valid numbers below "
                  "are optimistic.", ""]
    preset = config["preset"]
    lines += [
        f"- data: `{config['data']}` (fingerprint `{run.data_fingerprint}`), tuning split: "
        f"{len(run.tune_ids)} exams held out of train",
        f"- preset `{preset['name']}`: backbone {preset['backbone']}, "
        + (f"{preset['epochs']} epochs at lr {preset['lr']:g}" if not baseline else
           f"{preset['adv_epochs']} epochs at lr {preset['adv_lr']:g}, eps {config['eps']:g}, "
           f"retrain {config['retrain_pct']:g} %, protocol {config['protocol']}, clamp {config['clamp']}"),
        f"- selection on the {config['select_on']} split; thresholds: 0.5 and Youden's (chosen on the tuning split)",
        f"- versions: {', '.join(f'{k} {v}' for k, v in run.versions.items())}", "",
        "## Valid split, per model", "",
    ]
    header = "| model | AUC [95 % CI] | acc | sens | spec | acc (Y) | sens (Y) | spec (Y) |"
    if baseline:
        header += " baseline AUC | ΔAUC [95 % CI] | p |"
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for key, model in models.items():
        s = model["summary"]
        low, high = s["valid_auc_ci95"]
        row = (f"| {key} | {_fmt(s['valid']['auc'])} [{_fmt(low)}, {_fmt(high)}] | {_fmt(s['valid']['accuracy'])} | "
               f"{_fmt(s['valid']['sensitivity'])} | {_fmt(s['valid']['specificity'])} | "
               f"{_fmt(s['valid_youden']['accuracy'])} | {_fmt(s['valid_youden']['sensitivity'])} | "
               f"{_fmt(s['valid_youden']['specificity'])} |")
        if baseline and key in comparison:
            d = comparison[key]
            row += (f" {_fmt(baseline[key]['summary']['valid']['auc'])} | {d['delta']:+.3f} "
                    f"[{_fmt(d['low'])}, {_fmt(d['high'])}] | {_fmt(d['p_value'])} |")
        lines.append(row)
    mean = mean_metrics(models)
    row = (f"| **mean of {len(models)}** | {_fmt(mean['auc'])} | {_fmt(mean['accuracy'])} | "
           f"{_fmt(mean['sensitivity'])} | {_fmt(mean['specificity'])} | | | |")
    if baseline:
        base_mean = mean_metrics({k: baseline[k] for k in models if k in baseline})
        row += f" {_fmt(base_mean['auc'])} | {mean['auc'] - base_mean['auc']:+.3f} | |"
    lines += [row, "",
              "Y: at the Youden threshold chosen on the tuning split. CIs: percentile bootstrap, "
              f"{metrics.BOOTSTRAP_SAMPLES} resamples of the valid exams"
              + ("; p: paired bootstrap of the AUC difference on the same exams." if baseline else "."), "",
              "![learning curves](learning_curves.png)", "", "![ROC curves](roc.png)", ""]
    lines += robustness_section(run_dir)
    path = run_dir / "report.md"
    save_text("\n".join(lines), path)
    return path


def write_table2(sweep_dir: str | Path, baseline_dir: str | Path, runs: list[tuple[float, float, Path]],
                 table_eps: float) -> tuple[Path, Path, Path]:
    """The paper's Table 2 (rows: baseline and baseline + advtrain, for the mean and each model;
    columns: retrain percentages, at eps = `table_eps`), and the full (eps, p) grid."""
    sweep_dir = Path(sweep_dir)
    baseline = load_models(baseline_dir)
    keys = [k for k in (model_key(p, t) for p in PLANES for t in TASKS) if k in baseline]
    grid_rows = []
    per_run = {}
    for eps, pct, folder in runs:
        models = load_models(folder)
        per_run[(eps, pct)] = models
        comparison = compare(models, baseline)
        for key in keys:
            if key in models:
                s = models[key]["summary"]["valid"]
                grid_rows.append({"eps": eps, "retrain_pct": pct, "model": key, **{m: s[m] for m in METRICS},
                                  "delta_auc": comparison[key]["delta"], "p_value": comparison[key]["p_value"]})
    with open(sweep_dir / "grid.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=["eps", "retrain_pct", "model", *METRICS, "delta_auc", "p_value"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(grid_rows)

    pcts = sorted({pct for eps, pct, _ in runs if eps == table_eps})

    def value(models, key, metric):
        if key == "mean":
            return mean_metrics({k: models[k] for k in keys if k in models})[metric] if models else float("nan")
        return models[key]["summary"]["valid"][metric] if key in models else float("nan")

    table_rows = []
    for key in ["mean", *keys]:
        for label, source in (("baseline", None), ("baseline + advtrain", "adv")):
            for metric in METRICS:
                for pct in pcts:
                    models = baseline if source is None else per_run.get((table_eps, pct), {})
                    table_rows.append({"model": key, "row": label, "metric": metric, "retrain_pct": pct,
                                       "eps": table_eps, "value": value(models, key, metric)})
    with open(sweep_dir / "table2.csv", "w", newline="") as stream:
        writer = csv.DictWriter(stream, fieldnames=["model", "row", "metric", "retrain_pct", "eps", "value"],
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(table_rows)

    lookup = {(r["model"], r["row"], r["metric"], r["retrain_pct"]): r["value"] for r in table_rows}
    lines = ["# Table 2: baseline against FGSM retraining, by retrain percentage", "",
             f"**{NOT_FOR_CLINICAL_USE}** Valid split; eps = {table_eps:g}; models selected on the tuning split "
             "unless the runs say otherwise.", ""]
    for metric in METRICS:
        lines += [f"## {metric}", "", "| model | row | " + " | ".join(f"{p:g} %" for p in pcts) + " |",
                  "|---|---|" + "---|" * len(pcts)]
        for key in ["mean", *keys]:
            for label in ("baseline", "baseline + advtrain"):
                cells = " | ".join(_fmt(lookup[(key, label, metric, p)]) for p in pcts)
                lines.append(f"| {'**mean**' if key == 'mean' else key} | {label} | {cells} |")
        lines.append("")
    lines += ["The full (eps, retrain %) grid, with the paired-bootstrap AUC differences, is in grid.csv.", ""]
    save_text("\n".join(lines), sweep_dir / "table2.md")
    return sweep_dir / "table2.md", sweep_dir / "table2.csv", sweep_dir / "grid.csv"
