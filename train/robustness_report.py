"""What an evaluation under attack writes, and the section a run's report takes from it.

    DIR/robustness.csv                one row per (run, model, attack, eps): AUC with its bootstrap 95 % CI,
                                      accuracy, sensitivity and specificity at the bundle's threshold
    DIR/robustness_vs_baseline.csv    per retrained run and cell: the paired bootstrap of the AUC difference
                                      against the baseline on the same exams (with --against)
    DIR/robustness_exams.csv          every exam's logit in every cell, to recompute any number above
    DIR/robustness.png                AUC against eps, per model and task, baseline beside retrained
    DIR/robustness.md                 the section below, on its own
    DIR/robustness.json               the settings and the runs evaluated

Torch-free: it reads and writes rows; `robustness.py` computes them.
"""

from __future__ import annotations

import csv
import io
import json
import math
import os
from pathlib import Path

from mrnet.infer.registry import INTENSITY_STD, NOT_FOR_CLINICAL_USE, PLANES, TASK_TITLES, TASKS, model_key

from .checkpoint import save_json, save_text
from .rundir import RunFolder

COLUMNS = ("run", "kind", "train_eps", "model", "attack", "eps", "eps_normalised", "pgd_steps", "split", "exams",
           "auc", "auc_low", "auc_high", "accuracy", "sensitivity", "specificity", "threshold")
COMPARISON_COLUMNS = ("run", "model", "attack", "eps", "auc", "baseline_auc", "delta_auc", "low", "high", "p_value")
EXAM_COLUMNS = ("run", "model", "attack", "eps", "exam_id", "label", "logit")
# The seed paper's FGSM retraining eps, on the normalised scale.
SEED_PAPER_EPS = (1e-5, 3e-3)


def _csv(rows: list[dict], columns, path: Path) -> None:
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(columns), lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in row.items()})
    save_text(buffer.getvalue(), path)


def _read(path: Path) -> list[dict]:
    def value(text: str):
        try:
            return float(text)
        except ValueError:
            return text

    with open(path, newline="") as stream:
        return [{k: value(v) if k not in ("run", "kind", "model", "attack", "split") else v for k, v in row.items()}
                for row in csv.DictReader(stream)]


def write_results(out: str | Path, evaluation) -> dict[str, Path]:
    """Write every file of an `robustness.Evaluation` into `out`; returns them by name."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    paths = {name: out / f"{name}.csv" for name in ("robustness", "robustness_vs_baseline", "robustness_exams")}
    _csv(evaluation.rows, COLUMNS, paths["robustness"])
    _csv(evaluation.comparison, COMPARISON_COLUMNS, paths["robustness_vs_baseline"])
    _csv(evaluation.exams, EXAM_COLUMNS, paths["robustness_exams"])
    paths["json"] = out / "robustness.json"
    save_json({"settings": evaluation.settings.to_dict(), "baseline": evaluation.baseline, "runs": evaluation.runs},
              paths["json"])
    paths["png"] = out / "robustness.png"
    plot(evaluation.rows, evaluation.baseline, paths["png"])
    paths["md"] = out / "robustness.md"
    save_text("\n".join([f"# Robustness under attack\n\n**{NOT_FOR_CLINICAL_USE}**",
                         *section_lines(out, ".")[1:]]), paths["md"])
    return paths


def plot(rows: list[dict], baseline: str | None, path: Path) -> None:
    """A grid: the plane models and the fused task (rows) per task (columns); AUC against eps, one colour
    per run (the baseline blue), FGSM dashed and PGD solid."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    runs = list(dict.fromkeys(r["run"] for r in rows))
    present = {r["model"] for r in rows}
    panel_rows = [p for p in PLANES if any(model_key(p, t) in present for t in TASKS)] + ["fused"]
    tasks = [t for t in TASKS if f"fused-{t}" in present]
    others = iter(["tab:red", "tab:green", "tab:purple", "tab:orange", "tab:brown", "tab:pink"])
    kind = {r["run"]: r["kind"] for r in rows}
    colours = {run: "tab:blue" if run == baseline or kind[run] == "baseline" else next(others, "tab:grey")
               for run in runs}
    fig, axes = plt.subplots(len(panel_rows), len(tasks), figsize=(4 * len(tasks), 2.8 * len(panel_rows)), sharey=True,
                             squeeze=False)
    for r, row_kind in enumerate(panel_rows):
        for c, task in enumerate(tasks):
            ax, model = axes[r][c], f"fused-{task}" if row_kind == "fused" else model_key(row_kind, task)
            for run in runs:
                for attack, style in (("fgsm", "--"), ("pgd", "-")):
                    points = sorted((x["eps"], x["auc"]) for x in rows
                                    if x["run"] == run and x["model"] == model and x["attack"] == attack)
                    if points:
                        ax.plot(*zip(*points), style, marker="o", ms=3, color=colours[run], label=f"{run} {attack}")
            ax.set_title(f"{row_kind} · {TASK_TITLES[task]}", fontsize=10, pad=18 if r == 0 else 6)
            ax.set_ylim(-0.02, 1.02)
            ax.axhline(0.5, color="grey", lw=0.6, ls=":")
            ax.grid(alpha=0.3)
            if r == len(panel_rows) - 1:
                ax.set_xlabel("eps (grey levels of the uint8 volume)")
            if r == 0:
                top = ax.secondary_xaxis("top", functions=(lambda e: e / INTENSITY_STD, lambda n: n * INTENSITY_STD))
                top.set_xlabel("eps, normalised scale", fontsize=8)
            if c == 0:
                ax.set_ylabel("AUC")
    handles, labels = axes[0][0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=min(4, len(handles)), fontsize=8)
    fig.suptitle("AUC under white-box attack (FGSM dashed, PGD solid). Not for clinical use.")
    fig.tight_layout(rect=(0, 0.05, 1, 1))
    fig.savefig(path, dpi=70)
    plt.close(fig)


def _fmt(value, digits: int = 3) -> str:
    return "–" if value in ("", None) or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _eps(value: float) -> str:
    return f"{value:g}"


def section_lines(out: str | Path, seen_as: str) -> list[str]:
    """The report section from the files in `out`, a folder the report's links name `seen_as`."""
    out = Path(out)
    meta = json.loads((out / "robustness.json").read_text())
    settings, baseline = meta["settings"], meta["baseline"]
    rows = _read(out / "robustness.csv")
    comparison = _read(out / "robustness_vs_baseline.csv")
    eps_values = [float(e) for e in settings["eps"]]
    attacks = settings["attacks"]
    runs = [r["name"] for r in meta["runs"]]
    exams = int(rows[0]["exams"]) if rows else 0
    low, high = SEED_PAPER_EPS
    trained = sorted({r["train_eps"] for r in meta["runs"] if r["kind"] == "advtrain"})
    lines = [
        "## Robustness under attack", "",
        f"White-box L∞ attacks on the {settings['split']} split ({exams} exams): "
        + " and ".join({"fgsm": "FGSM", "pgd": f"PGD ({settings['pgd_steps']} steps of 2.5 eps / steps from a random start, "
                                               f"seed {settings['seed']})"}[a] for a in attacks)
        + ". eps is in grey levels of the uint8 volume and every example stays within [0, 255]. A plane model is "
        "attacked on its exam logit with the exam's true label; a fused task by perturbing the exam's planes "
        "jointly against the fused probability (the fusion fitted on the tuning split). Accuracy, sensitivity "
        "and specificity (in robustness.csv) are at the bundle's thresholds: Youden's, chosen on the tuning split.",
        "",
        "| eps, grey levels | " + " | ".join(_eps(e) for e in eps_values) + " |",
        "|---|" + "---|" * len(eps_values),
        "| eps, normalised scale (/ 49.73) | " + " | ".join(f"{e / INTENSITY_STD:.3g}" for e in eps_values) + " |", "",
        f"The seed paper retrains with eps {low:g} … {high:g} on the normalised scale, {low * INTENSITY_STD:.2g} … "
        f"{high * INTENSITY_STD:.2g} grey levels: below one quantisation step of the uint8 volume, a change no "
        "scanner file can carry."
        + (f" These runs retrained at eps {', '.join(f'{e:g}' for e in trained)} "
           f"(= {', '.join(f'{e * INTENSITY_STD:.3g}' for e in trained)} grey levels)." if trained else ""), "",
        "AUC under attack, fused tasks:", "",
        "| model | run | attack | " + " | ".join(f"eps {_eps(e)}" for e in eps_values) + " |",
        "|---|---|---|" + "---|" * len(eps_values),
    ]
    lookup = {(r["run"], r["model"], r["attack"], float(r["eps"])): r for r in rows}
    fused = [m for m in dict.fromkeys(r["model"] for r in rows) if m.startswith("fused-")]
    for model in fused:
        for run in runs:
            for attack in attacks:
                cells = [_fmt(lookup.get((run, model, attack, e), {}).get("auc")) for e in eps_values]
                lines.append(f"| {model} | {run} | {attack} | " + " | ".join(cells) + " |")
    if comparison:
        lines += ["", f"Retrained against the baseline ({baseline}) on the same adversarial exams: ΔAUC [95 % CI] "
                  "and p from a paired bootstrap over exams (2000 resamples).", "",
                  "| model | run | attack | " + " | ".join(f"eps {_eps(e)}" for e in eps_values) + " |",
                  "|---|---|---|" + "---|" * len(eps_values)]
        found = {(r["run"], r["model"], r["attack"], float(r["eps"])): r for r in comparison}
        for model in fused:
            for run in [r for r in runs if r != baseline]:
                for attack in attacks:
                    cells = []
                    for e in eps_values:
                        d = found.get((run, model, attack, e))
                        cells.append("–" if d is None or _fmt(d["delta_auc"]) == "–" else
                                     f"{d['delta_auc']:+.3f} [{_fmt(d['low'])}, {_fmt(d['high'])}] "
                                     f"p {_fmt(d['p_value'], 2)}")
                    lines.append(f"| {model} | {run} | {attack} | " + " | ".join(cells) + " |")
    lines += ["", f"![AUC under attack]({seen_as}/robustness.png)", "",
              f"Every model, with bootstrap CIs and the decisions at the thresholds: [robustness.csv]({seen_as}/"
              "robustness.csv).", ""]
    return lines


def section(run_dir: str | Path) -> list[str]:
    """The robustness section of a run's report, from the latest evaluation that included the run
    (none when it was never evaluated or its results are gone)."""
    run_dir = Path(run_dir)
    out = RunFolder(run_dir).robustness_results()
    if out is None or not (out / "robustness.csv").exists() or not (out / "robustness.json").exists():
        return []
    return section_lines(out, os.path.relpath(out, run_dir))
