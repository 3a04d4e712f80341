"""Robustness under attack: a run's plane models and fused tasks scored on adversarial exams.

Every plane model is attacked white-box on its exam logit with the exam's true label (FGSM, and PGD
with a random start and `pgd_steps` steps of 2.5 eps / steps; `attacks.py`), at each eps of a ladder in grey
levels of the uint8 volume; the fused task is attacked by perturbing the planes of an exam jointly
against the task's fused probability (the fusion fitted on the tuning split, `fusion.fit_fusion`).
Accuracy, sensitivity and specificity are taken at the thresholds the bundle uses: Youden's, chosen
on the tuning split, per model and per fused task.

The attacks ascend the logit margin (1 - 2y) * z instead of BCE(z, y). Their gradients have the same
sign (dBCE/dz = sigmoid(z) - y, negative for y = 1 and positive for y = 0), so FGSM and PGD are the
same attacks; but BCE's gradient is rounded to exactly zero once sigmoid(z) rounds to y in float32
(|z| > 17), and a confidently right model would then look robust because the attack cannot move.

Why the joint attack on the fused task costs nothing extra: the fused logit is b + sum_p w_p z_p(x_p)
and each plane's volume feeds only its own logit, so the joint sign-gradient step on plane p is
(1 - 2y) * sign(w_p) * sign(grad z_p(x_p)): the plane model's own attack when w_p > 0, and its attack
with the label flipped when w_p < 0 (w_p = 0: the plane does not count). With the same random start
per (exam, plane, eps), the joint FGSM and PGD examples are the plane attacks' examples, so the fused
adversarial logit is assembled from theirs. `tests/train/test_robustness.py` checks this against the
joint attack run through autograd on all three planes at once.

Random starts are drawn from generators seeded by (seed, exam, plane, eps): the same for every model
and every run, so a baseline and its retrained run face the same starts, and results reproduce.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from mrnet.infer.dataset import load_split
from mrnet.infer.errors import InputError
from mrnet.infer.fusion import subset_key
from mrnet.infer.registry import INTENSITY_STD, model_key

from . import metrics
from .attacks import ATTACKS, fgsm_ladder, pgd
from .rundir import RunFolder, RunRecord, sigmoid

EVAL_SPLITS = ("valid", "tune")


def fused_key(task: str) -> str:
    return f"fused-{task}"


@dataclass(frozen=True)
class AttackSettings:
    """How a run is attacked; not part of any run's identity (a preset does not carry it)."""

    attacks: tuple[str, ...] = ATTACKS
    eps: tuple[float, ...] = (0.0, 0.5, 1.0, 2.0, 4.0)  # grey levels of the uint8 volume
    pgd_steps: int = 10
    split: str = "valid"
    seed: int = 0

    def __post_init__(self):
        if not self.attacks or any(a not in ATTACKS for a in self.attacks) or len(set(self.attacks)) < len(
                self.attacks):
            raise InputError("BAD_OPTION", f"a comma-separated subset of {', '.join(ATTACKS)}, not "
                             f"{','.join(self.attacks)!r}", option="attack")
        if not self.eps or any(not (isinstance(e, (int, float)) and math.isfinite(e) and e >= 0) for e in self.eps):
            raise InputError("BAD_OPTION", f"grey levels >= 0, not {self.eps}", option="eps")
        if list(self.eps) != sorted(set(self.eps)):
            raise InputError("BAD_OPTION", f"increasing values without repeats, not {self.eps}", option="eps")
        if isinstance(self.pgd_steps, bool) or not isinstance(self.pgd_steps, int) or self.pgd_steps < 1:
            raise InputError("BAD_OPTION", f"a whole number >= 1, not {self.pgd_steps!r}", option="pgd_steps")
        if self.split not in EVAL_SPLITS:
            raise InputError("BAD_OPTION", f"one of {', '.join(EVAL_SPLITS)}, not {self.split!r}", option="split")

        object.__setattr__(self, "attacks", tuple(self.attacks))
        object.__setattr__(self, "eps", tuple(float(e) for e in self.eps))

    def to_dict(self) -> dict:
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


# Per preset name, beside the preset rather than in it (a preset field would change every run's
# config hash). demo: what `make demo` can afford on two CPU cores (see README, robustness).
SETTINGS_BY_PRESET: dict[str, AttackSettings] = {
    "paper": AttackSettings(),
    "demo": AttackSettings(eps=(0.0, 2.0), pgd_steps=2),
}


def settings_for(preset: str) -> AttackSettings:
    return SETTINGS_BY_PRESET.get(preset, AttackSettings())


def normalised(eps: float) -> float:
    """eps in grey levels on the normalised scale of the network's input (and of FGSM retraining)."""
    return eps / INTENSITY_STD


@dataclass
class RunScores:
    """One run's exam logits under every (model, attack, eps); model is `plane-task` or `fused-task`."""

    folder: Path
    kind: str
    train_eps: float
    exam_ids: tuple[str, ...]
    labels: dict[str, np.ndarray]  # task -> labels aligned with exam_ids
    thresholds: dict[str, float]  # model -> the bundle's threshold on the probability
    logits: dict[tuple[str, str, float], np.ndarray] = field(default_factory=dict)

    def task_of(self, model: str) -> str:
        return model.rsplit("-", 1)[1]


def check_runs(runs: list[Path], against: Path | None) -> list[RunRecord]:
    """Every run finished, and all on the same data and tuning split as the baseline `against`."""
    records = []
    for run in [*runs, *([against] if against else [])]:
        folder = RunFolder(run)
        record = folder.record()
        for plane in record.spec.planes:
            for task in record.spec.tasks:
                if not folder.model(model_key(plane, task)).finished:
                    raise InputError("RUN_INCOMPLETE", f"model {model_key(plane, task)} has not finished training",
                                     run)
        records.append(record)
    if against is not None:
        base = records[-1]
        for run, record in zip(runs, records):
            if record.data_fingerprint != base.data_fingerprint or record.tune_ids != base.tune_ids:
                raise InputError("BASELINE_MISMATCH", "this run and the baseline were trained on other data or "
                                 "another tuning split", run, option="against")
    return records


def _seed(seed: int, exam_id: str, plane: str, eps: float) -> int:
    digest = hashlib.sha256(f"{seed}|{exam_id}|{plane}|{eps!r}".encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


def _load_nets(folder: RunFolder, record: RunRecord, device):
    import torch

    from .checkpoint import load_torch
    from .model import MRNet

    nets = {}
    for plane in record.spec.planes:
        for task in record.spec.tasks:
            best = load_torch(folder.model(model_key(plane, task)).best)
            net = MRNet(best["backbone"])
            net.load_state_dict(best["model"])
            nets[(plane, task)] = net.eval().requires_grad_(False).to(device).to(memory_format=torch.channels_last)
    return nets


def _attack_plane(net, volume, label: int, direction: int, settings: AttackSettings, exam_id: str,
                  plane: str) -> dict[tuple[str, float], float]:
    """Adversarial logits of one plane model on one exam, per (attack, eps > 0). direction -1 flips the
    label (what a negatively weighted plane of the fused attack gets)."""
    import torch

    sign = float(direction * (1 - 2 * label))
    loss = lambda volumes: sign * net.forward_volume(volumes[0]).sum()  # noqa: E731 - the logit margin
    eps_values = [e for e in settings.eps if e > 0]
    examples: dict[tuple[str, float], torch.Tensor] = {}
    if "fgsm" in settings.attacks and eps_values:
        for eps, (x,) in zip(eps_values, fgsm_ladder(loss, [volume], eps_values)):
            examples[("fgsm", eps)] = x
    if "pgd" in settings.attacks:
        for eps in eps_values:
            generator = torch.Generator().manual_seed(_seed(settings.seed, exam_id, plane, eps))
            (examples[("pgd", eps)],) = pgd(loss, [volume], eps, settings.pgd_steps, generators=[generator])
    with torch.no_grad():
        out = {cell: float(net.forward_volume(x).item()) for cell, x in examples.items()}
    return out


def score_run(run_dir: str | Path, settings: AttackSettings, device: str = "auto", data: str | Path | None = None,
              on_exam: Callable[[int, int], None] | None = None) -> RunScores:
    """Clean and adversarial logits of every model and fused task of a finished run."""
    import torch

    from .fusion import fit_fusion
    from .loop import resolve_device

    folder = RunFolder(run_dir)
    record = folder.record()
    planes, tasks = record.spec.planes, record.spec.tasks
    root = record.spec.data if data is None else data
    split = (load_split(root, "valid", planes) if settings.split == "valid"
             else load_split(root, "train", planes).subset(record.tune_ids))
    where = resolve_device(device)
    nets = _load_nets(folder, record, where)
    fusion_models = {t: f[subset_key(planes)] for t, f in fit_fusion(run_dir, planes, tasks)[0].items()}
    scores = RunScores(folder=folder.path, kind=record.kind, train_eps=record.spec.eps, exam_ids=split.ids,
                       labels={t: split.labels[t].astype(int) for t in tasks}, thresholds={})
    for plane in planes:
        for task in tasks:
            key = model_key(plane, task)
            scores.thresholds[key] = folder.model(key).summary()["youden_threshold"]
    for task in tasks:
        scores.thresholds[fused_key(task)] = fusion_models[task]["threshold"]
    cells = [(a, e) for a in settings.attacks for e in settings.eps]
    per_exam: dict[tuple[str, str, float], list[float]] = {}
    for n, exam_id in enumerate(split.ids):
        volumes = {p: torch.from_numpy(np.array(split.volume(exam_id, p), dtype=np.float32)).to(where) for p in planes}
        plane_logits: dict[tuple[str, str, int], dict] = {}
        for (plane, task), net in nets.items():
            label = int(split.labels[task][n])
            with torch.no_grad():
                clean = float(net.forward_volume(volumes[plane]).item())
            weight = fusion_models[task]["weights"][fusion_models[task]["planes"].index(plane)]
            for direction in (1, -1) if weight < 0 else (1,):
                found = _attack_plane(net, volumes[plane], label, direction, settings, exam_id, plane)
                plane_logits[(plane, task, direction)] = {**found, **{(a, 0.0): clean for a in settings.attacks}}
        for (plane, task, direction), found in plane_logits.items():
            if direction == 1:
                for cell in cells:
                    per_exam.setdefault((model_key(plane, task), *cell), []).append(found[cell])
        for task in tasks:
            fusion = fusion_models[task]
            for cell in cells:
                z = fusion["bias"] + sum(w * plane_logits[(p, task, 1 if w >= 0 else -1)][cell]
                                         for p, w in zip(fusion["planes"], fusion["weights"]))
                per_exam.setdefault((fused_key(task), *cell), []).append(z)
        if on_exam:
            on_exam(n + 1, len(split.ids))
    scores.logits = {k: np.asarray(v, dtype=np.float64) for k, v in per_exam.items()}
    return scores


def metric_rows(name: str, scores: RunScores, settings: AttackSettings) -> list[dict]:
    """robustness.csv's rows for one run: AUC (bootstrap 95 % CI) and the decisions at the bundle's thresholds."""
    rows = []
    for (model, attack, eps), logits in scores.logits.items():
        labels = scores.labels[scores.task_of(model)]
        probability = sigmoid(logits)
        found = metrics.at_threshold(labels, probability, scores.thresholds[model])
        low, high = metrics.bootstrap_auc_ci(labels, probability, seed=settings.seed)
        rows.append({"run": name, "kind": scores.kind, "train_eps": scores.train_eps, "model": model,
                     "attack": attack, "eps": eps, "eps_normalised": normalised(eps),
                     "pgd_steps": settings.pgd_steps if attack == "pgd" else "", "split": settings.split,
                     "exams": len(labels), "auc": found["auc"], "auc_low": low, "auc_high": high,
                     "accuracy": found["accuracy"], "sensitivity": found["sensitivity"],
                     "specificity": found["specificity"], "threshold": found["threshold"]})
    return rows


def comparison_rows(name: str, scores: RunScores, baseline: RunScores, settings: AttackSettings) -> list[dict]:
    """Retrained against baseline on the same adversarial cells: paired bootstrap of the AUC difference."""
    if scores.exam_ids != baseline.exam_ids:
        raise InputError("BASELINE_MISMATCH", "the run and its baseline were scored on different exams",
                         scores.folder, option="against")
    rows = []
    for (model, attack, eps), logits in scores.logits.items():
        if (model, attack, eps) not in baseline.logits:
            continue
        labels, theirs = scores.labels[scores.task_of(model)], baseline.logits[(model, attack, eps)]
        found = metrics.paired_bootstrap(labels, sigmoid(theirs), sigmoid(logits), seed=settings.seed)
        rows.append({"run": name, "model": model, "attack": attack, "eps": eps,
                     "auc": metrics.auc(labels, logits), "baseline_auc": metrics.auc(labels, theirs),
                     "delta_auc": found["delta"], "low": found["low"], "high": found["high"],
                     "p_value": found["p_value"]})
    return rows


def exam_rows(name: str, scores: RunScores) -> list[dict]:
    """Every exam's logit under every cell, so any number in robustness.csv can be recomputed."""
    return [{"run": name, "model": model, "attack": attack, "eps": eps, "exam_id": exam_id,
             "label": int(label), "logit": f"{logit:.6f}"}
            for (model, attack, eps), logits in scores.logits.items()
            for exam_id, label, logit in zip(scores.exam_ids, scores.labels[scores.task_of(model)], logits)]


def score_runs(runs: list[Path], settings: AttackSettings, device: str = "auto", data=None, executor=None,
               on_exam: Callable[[str, int, int], None] | None = None) -> list[RunScores]:
    """`score_run` for every run, one job per run on the executor (progress per exam only in this
    process: a local executor with one process)."""
    from .executors import LocalExecutor

    executor = executor or LocalExecutor(1)
    if executor.local and getattr(executor, "processes", 1) <= 1 or len(runs) == 1 and executor.local:
        return [score_run(run, settings, device, data,
                          (lambda done, total, run=run: on_exam(str(run), done, total)) if on_exam else None)
                for run in runs]
    return executor.map(score_run, [(str(run), settings, device, data) for run in runs])


def run_names(runs: list[Path]) -> list[str]:
    """What robustness.csv calls each run: its folder name, or its path where two names collide."""
    names = [Path(r).name for r in runs]
    return names if len(set(names)) == len(names) else [str(r) for r in runs]


@dataclass(frozen=True)
class Evaluation:
    """Everything an evaluation found, as the rows of its CSV files (see `robustness_report`)."""

    settings: AttackSettings
    runs: list[dict]  # name, folder, kind, config_hash, train_eps; the baseline first when there is one
    baseline: str | None  # the name of the baseline run (--against)
    rows: list[dict]
    comparison: list[dict]
    exams: list[dict]


def evaluate(runs: list[Path], against: Path | None, settings: AttackSettings, device: str = "auto", data=None,
             executor=None, on_exam: Callable[[str, int, int], None] | None = None) -> Evaluation:
    """Score the runs (and the baseline `against`, first) under every attack and eps; compare each run
    with the baseline on the same adversarial cells."""
    records = check_runs(runs, against)
    ordered = [against, *runs] if against else list(runs)
    records = [records[-1], *records[:-1]] if against else records
    names = run_names(ordered)
    scores = score_runs(ordered, settings, device, data, executor, on_exam)
    rows = [row for name, s in zip(names, scores) for row in metric_rows(name, s, settings)]
    comparison = ([row for name, s in zip(names[1:], scores[1:])
                   for row in comparison_rows(name, s, scores[0], settings)] if against else [])
    exams = [row for name, s in zip(names, scores) for row in exam_rows(name, s)]
    meta = [{"name": name, "folder": str(Path(run).resolve()), "kind": record.kind, "config_hash": record.config_hash,
             "train_eps": record.spec.eps} for name, run, record in zip(names, ordered, records)]
    return Evaluation(settings, meta, names[0] if against else None, rows, comparison, exams)
