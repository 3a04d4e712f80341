"""The report of a replicate set: the same run trained with several seeds (`rundir.replicate_folders`).

One seed's numbers cannot say whether FGSM retraining helped: the seed paper's gain (mean of nine
AUCs 0.8930 -> 0.8941) is a tenth of the width of a 95 % CI on 120 exams, and a retrained model also
moves with the seed it was trained with. So a set reports, per model and for the two headline
numbers, the mean +- sd across seeds, and for a retrained set the difference against its baseline
set with both sources of variation (`comparison.compare_replicates`: seeds and exams).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from mrnet.infer.registry import NOT_FOR_CLINICAL_USE

from .checkpoint import save_text
from .comparison import METHOD, Items, compare_replicates, mean_auc
from .report import HEADLINES, _fmt, headline_items
from .rundir import RunFolder, replicate_folders


def _mean_sd(values: list[float]) -> str:
    values = [v for v in values if not np.isnan(v)]
    if not values:
        return "–"
    return f"{np.mean(values):.3f} ± {np.std(values, ddof=1):.3f}" if len(values) > 1 else f"{values[0]:.3f}"


def set_items(folders: dict[int, Path]) -> dict[str, dict[int, Items]]:
    """Per headline ("fused", "models") and per model key: each seed's valid predictions as Items."""
    out: dict[str, dict[int, Items]] = {}
    for seed, folder in folders.items():
        for name, items in headline_items(folder).items():
            out.setdefault(name, {})[seed] = items
        for key, model in RunFolder(folder).finished_models().items():
            valid = model.predictions["valid"]
            out.setdefault(key, {})[seed] = Items([valid["label"]], [valid["probability"]])
    return out


def compare_sets(items: dict[str, dict[int, Items]], baseline: dict[str, dict[int, Items]]) -> dict[str, dict]:
    """Retrained against baseline, per headline and model, over the seeds both sets have (a headline
    whose items differ between seeds, e.g. after a failed model, is left out rather than misaligned)."""
    out = {}
    for name, by_seed in items.items():
        seeds = sorted(set(by_seed) & set(baseline.get(name, {})))
        pairs = [(baseline[name][s], by_seed[s]) for s in seeds]
        if pairs and len({len(i.labels) for pair in pairs for i in pair}) == 1:
            out[name] = compare_replicates([b for b, _ in pairs], [a for _, a in pairs])
    return out


def write_set_report(set_dir: str | Path) -> Path:
    """SET/report.md: mean +- sd across seeds, and for a retrained set the two-level comparison."""
    set_dir = Path(set_dir)
    folders = replicate_folders(set_dir)
    records = {seed: RunFolder(f).record() for seed, f in folders.items()}
    first = next(iter(records.values()))
    items = set_items(folders)
    baseline, comparison = {}, {}
    if first.kind == "advtrain":
        baseline = set_items({seed: Path(r.spec.from_run) for seed, r in records.items()})
        comparison = compare_sets(items, baseline)
    title = "FGSM retraining" if first.kind == "advtrain" else "baseline"
    lines = [f"# MRNet {title} report: {len(folders)} replicate seeds", "", f"**{NOT_FOR_CLINICAL_USE}**", ""]
    if first.synthetic_data:
        lines += ["> Trained and evaluated on a **synthetic knee phantom**: these are demo weights and demo "
                  "numbers, not evidence about real knees.", ""]
    spec = first.spec
    lines += [f"- seeds {', '.join(map(str, folders))} (each a full replicate: initial weights, order of exams, "
              "augmentation, FGSM subset); one tuning split for all, fixed by the data",
              f"- preset `{spec.preset.name}`, backbone {spec.preset.backbone}"
              + (f", eps {spec.eps:g}, retrain {spec.retrain_pct:g} %" if first.kind == "advtrain" else ""),
              "- per-seed reports: " + ", ".join(f"[seed {s}]({f.relative_to(set_dir)}/report.md)"
                                                 for s, f in folders.items()), ""]
    header = "| valid AUC | mean ± sd over seeds |"
    if comparison:
        header += " baseline | Δ [95 % CI] | p | sd of Δ over seeds |"
    rows = [("fused", HEADLINES["fused"]), ("models", HEADLINES["models"])]
    rows += [(key, key) for key in items if key not in ("fused", "models")]
    lines += [header, "|" + "---|" * (header.count("|") - 1)]
    for name, label in rows:
        if name not in items:
            continue
        n = len(next(iter(items[name].values())).labels)
        row = f"| {'**' + label.format(n=n) + '**' if name in HEADLINES else label} | " \
              f"{_mean_sd([mean_auc(i) for i in items[name].values()])} |"
        if name in comparison:
            d = comparison[name]
            row += (f" {_mean_sd([mean_auc(i) for i in baseline[name].values()])} | {d['delta']:+.3f} "
                    f"[{_fmt(d['low'])}, {_fmt(d['high'])}] | {_fmt(d['p_value'])} | {_fmt(d['sd_across_seeds'])} |")
        lines.append(row)
    lines += ["", f"sd: across seeds (n - 1). Δ: retrained minus baseline, mean over seeds; CI and p: {METHOD}."
              if comparison else "sd: across seeds (n - 1).", ""]
    path = set_dir / "report.md"
    save_text("\n".join(lines), path)
    return path
