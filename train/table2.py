"""The paper's Table 2 for a sweep (baseline against FGSM retraining, by retrain percentage), and the
full (eps, retrain %) grid with the AUC differences against the baseline.

With replicate seeds every cell is the mean +- sd across seeds and every difference comes from the
two-level bootstrap (`comparison.py`); with one seed, the value and the paired bootstrap. Table 2
leads with the MRNet leaderboard metric (the mean of the fused task metrics) beside the mean of the
single-plane models, as the paper's own table gives the mean of nine.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np

from mrnet.infer.registry import NOT_FOR_CLINICAL_USE, PLANES, TASKS, model_key

from .checkpoint import save_text
from .comparison import METHOD
from .fusion import fit_fusion
from .replicates import compare_sets, set_items
from .report import METRICS
from .rundir import RunFolder

LEADERBOARD = "leaderboard"  # the mean over tasks of the fused metric
MEAN = "mean"  # the mean over the single-plane models


def run_metrics(folder: Path) -> dict[str, dict[str, float]]:
    """Valid metrics of a run: per model, the mean of its models, and the leaderboard (mean over tasks
    of the fused task's AUC, and its accuracy, sensitivity, specificity at the fusion's threshold)."""
    run = RunFolder(folder)
    spec = run.record().spec
    models = run.finished_models()
    out = {key: {m: model.summary["valid"][m] for m in METRICS} for key, model in models.items()}
    if out:
        out[MEAN] = {m: float(np.nanmean([v[m] for v in out.values()])) for m in METRICS}
    if len(models) == len(spec.planes) * len(spec.tasks):
        _, report = fit_fusion(folder, spec.planes, spec.tasks)
        full = "+".join(spec.planes)
        out[LEADERBOARD] = {m: float(np.nanmean([report[t][full]["valid"][m] for t in spec.tasks])) for m in METRICS}
    return out


def _cell(values: list[float]) -> str:
    values = [v for v in values if not np.isnan(v)]
    if not values:
        return "–"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def _csv(rows: list[dict], fields: list[str]) -> str:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=fields, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return buffer.getvalue()


def write_table2(sweep_dir: str | Path, baselines: dict[int, Path], runs: list[tuple[float, float, int, Path]],
                 table_eps: list[float]) -> tuple[Path, Path, Path]:
    """Table 2 (rows: baseline and baseline + advtrain, for the leaderboard metric, the mean and each
    model; columns: retrain percentages) for each eps of `table_eps`, and the full grid.

    `baselines` maps each seed to its baseline run; `runs` lists (eps, retrain %, seed, run folder).
    """
    sweep_dir = Path(sweep_dir)
    base_metrics = {seed: run_metrics(folder) for seed, folder in baselines.items()}
    base_items = set_items(baselines)
    keys = [k for k in (model_key(p, t) for p in PLANES for t in TASKS) if k in next(iter(base_metrics.values()))]
    configs = sorted({(eps, pct) for eps, pct, _, _ in runs})
    per_config = {c: {seed: folder for eps, pct, seed, folder in runs if (eps, pct) == c} for c in configs}
    metrics_of = {c: {seed: run_metrics(f) for seed, f in folders.items()} for c, folders in per_config.items()}

    grid_rows = []
    for (eps, pct), folders in per_config.items():
        comparison = compare_sets(set_items(folders), base_items)
        for key in keys:
            values = [m[key] for m in metrics_of[(eps, pct)].values() if key in m]
            if values and key in comparison:
                d = comparison[key]
                grid_rows.append({"eps": eps, "retrain_pct": pct, "model": key,
                                  **{m: float(np.mean([v[m] for v in values])) for m in METRICS},
                                  "delta_auc": d["delta"], "p_value": d["p_value"], "delta_low": d["low"],
                                  "delta_high": d["high"], "seeds": len(values)})
    grid_fields = ["eps", "retrain_pct", "model", *METRICS, "delta_auc", "p_value", "delta_low", "delta_high", "seeds"]
    save_text(_csv(grid_rows, grid_fields), sweep_dir / "grid.csv")

    rows_of = [LEADERBOARD, MEAN, *keys]
    table_rows = []
    for eps in table_eps:
        for key in rows_of:
            for label in ("baseline", "baseline + advtrain"):
                for metric in METRICS:
                    for pct in sorted(p for e, p in configs if e == eps):
                        source = base_metrics.values() if label == "baseline" else metrics_of[(eps, pct)].values()
                        values = [m[key][metric] for m in source if key in m]
                        table_rows.append({"model": key, "row": label, "metric": metric, "retrain_pct": pct,
                                           "eps": eps, "value": float(np.mean(values)) if values else float("nan"),
                                           "sd": float(np.std(values, ddof=1)) if len(values) > 1 else float("nan"),
                                           "seeds": len(values), "_values": values})
    save_text(_csv([{k: v for k, v in r.items() if k != "_values"} for r in table_rows],
                   ["model", "row", "metric", "retrain_pct", "eps", "value", "sd", "seeds"]), sweep_dir / "table2.csv")

    seeds = sorted(baselines)
    lines = ["# Table 2: baseline against FGSM retraining, by retrain percentage", "",
             f"**{NOT_FOR_CLINICAL_USE}** Valid split; eps = {', '.join(f'{e:g}' for e in table_eps)}; models "
             "selected on the tuning split unless the runs say otherwise"
             + (f"; mean ± sd over the replicate seeds {', '.join(map(str, seeds))}." if len(seeds) > 1 else "."),
             f"**{LEADERBOARD}**: the mean over the three tasks of the fused task's metric (the MRNet leaderboard "
             "ranks the mean fused AUC); **mean**: the mean of the single-plane models.", ""]
    lookup = {(r["eps"], r["model"], r["row"], r["metric"], r["retrain_pct"]): r["_values"] for r in table_rows}
    level = "##" if len(table_eps) == 1 else "###"
    for eps in table_eps:
        pcts = sorted(p for e, p in configs if e == eps)
        if len(table_eps) > 1:
            lines += [f"## eps = {eps:g}", ""]
        for metric in METRICS:
            lines += [f"{level} {metric}", "", "| model | row | " + " | ".join(f"{p:g} %" for p in pcts) + " |",
                      "|---|---|" + "---|" * len(pcts)]
            for key in rows_of:
                for label in ("baseline", "baseline + advtrain"):
                    if not any(lookup.get((eps, key, label, metric, p)) for p in pcts):
                        continue
                    cells = " | ".join(_cell(lookup[(eps, key, label, metric, p)]) for p in pcts)
                    name = f"**{key}**" if key in (LEADERBOARD, MEAN) else key
                    lines.append(f"| {name} | {label} | {cells} |")
            lines.append("")
    lines += ["The full (eps, retrain %) grid, with the AUC differences against the baseline, is in grid.csv "
              f"(Δ and p: {METHOD if len(seeds) > 1 else 'paired bootstrap over the valid exams'}).", ""]
    save_text("\n".join(lines), sweep_dir / "table2.md")
    return sweep_dir / "table2.md", sweep_dir / "table2.csv", sweep_dir / "grid.csv"
