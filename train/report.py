"""What a run reports: report.md (with its learning curves and ROC curves, `plots.py`)."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np

from mrnet.infer.errors import InputError
from mrnet.infer.registry import NOT_FOR_CLINICAL_USE

from . import calibration, metrics, plots
from .checkpoint import save_text
from .comparison import Items, compare_replicates, mean_auc, mean_auc_ci
from .fusion import fused_predictions
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


def headline_items(run_dir: str | Path, only: set[str] | None = None) -> dict[str, Items]:
    """The valid predictions behind a run's two headline numbers: the fused task probabilities (the
    MRNet leaderboard ranks the mean of the fused task AUCs; only when every model finished) and the
    single-plane models' (those in `only`, when given)."""
    run = RunFolder(run_dir).record()
    models = RunFolder(run_dir).finished_models()
    out = {}
    if len(models) == len(run.spec.planes) * len(run.spec.tasks):
        fused = fused_predictions(run_dir, run.spec.planes, run.spec.tasks)
        tasks = run.spec.tasks
        out["fused"] = Items([fused[t]["label"] for t in tasks], [fused[t]["probability"] for t in tasks])
    chosen = [m.predictions["valid"] for key, m in models.items() if only is None or key in only]
    if chosen and (only is None or len(chosen) == len(only)):
        out["models"] = Items([v["label"] for v in chosen], [v["probability"] for v in chosen])
    return out


HEADLINES = {"fused": "leaderboard: mean of the {n} fused task AUCs", "models": "mean of the {n} single-plane AUCs"}


def headline_section(run_dir: str | Path, baseline_dir: str | Path | None, seed: int = 0) -> list[str]:
    """The report's first table: the leaderboard metric and the mean of the single-plane AUCs, with
    bootstrap CIs, and for a retrained run the paired difference against its baseline."""
    items = headline_items(run_dir)
    base = headline_items(baseline_dir, only=set(RunFolder(run_dir).finished_models())) if baseline_dir else {}
    header = "| headline (valid split) | AUC [95 % CI] |" + (" baseline | Δ [95 % CI] | p |" if base else "")
    lines = ["## Headline", "", header, "|" + "---|" * (header.count("|") - 1)]
    for name in ("fused", "models"):
        if name not in items:
            continue
        low, high = mean_auc_ci(items[name], seed=seed)
        row = (f"| {HEADLINES[name].format(n=len(items[name].labels))} | {_fmt(mean_auc(items[name]))} "
               f"[{_fmt(low)}, {_fmt(high)}] |")
        if name in base:
            d = compare_replicates([base[name]], [items[name]], seed=seed)
            row += (f" {_fmt(mean_auc(base[name]))} | {d['delta']:+.3f} [{_fmt(d['low'])}, {_fmt(d['high'])}] | "
                    f"{_fmt(d['p_value'])} |")
        lines.append(row)
    lines += ["", "The MRNet leaderboard ranks the mean of the three fused task AUCs (each task's plane models "
              "fused by the logistic regression fitted on the tuning split). CIs: percentile bootstrap of the valid "
              "exams, resampled jointly for every task or model" + ("; Δ and p: paired bootstrap on the same exams."
                                                                    if base else "."), ""]
    return lines


def write_run_report(run_dir: str | Path) -> Path:
    """report.md, learning_curves.png and roc.png for a run (against its baseline for an advtrain run)."""
    run_dir = Path(run_dir)
    run = RunFolder(run_dir).record()
    models = load_models(run_dir)
    baseline_dir = run.spec.from_run
    baseline = load_models(baseline_dir) if run.kind == "advtrain" and baseline_dir else None
    comparison = compare(models, baseline, seed=run.spec.seed) if baseline else {}
    plots.learning_curves(models, baseline, run_dir / "learning_curves.png")
    plots.roc_curves(models, baseline, run_dir / "roc.png")

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
        *headline_section(run_dir, baseline_dir if baseline else None, seed=run.spec.seed),
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
    lines += calibration.report_section(run_dir)  # writes calibration.png
    lines += robustness_section(run_dir)
    path = run_dir / "report.md"
    save_text("\n".join(lines), path)
    return path
