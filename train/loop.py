"""Training one (plane, task) model: baseline or FGSM retraining, with exact resume.

`fit_model` is the whole life of one model: build or load it, train epoch by epoch, evaluate on
the tuning and valid splits, checkpoint atomically after every epoch, select the best epoch, and
write its predictions. Killed at any moment, it resumes from the last checkpoint and, with the same
seed, ends with the same metrics as a run that was never interrupted.
"""

from __future__ import annotations

import random
import time
from dataclasses import asdict, dataclass, field
from typing import Callable

import numpy as np
import torch

from mrnet.infer.dataset import MRNetSplit
from mrnet.infer.errors import InputError

from . import metrics
from .adversarial import fgsm
from .checkpoint import load_torch, save_torch
from .data import EpochSampler, PlaneDataset, class_weights, loader, pick_fraction, weighted_bce
from .model import MRNet, load_pretrained, normalise
from .rundir import ModelFolder, sigmoid
from .spec import ModelJob


@dataclass(frozen=True)
class Splits:
    """fit: what the model learns from; tune: held out of train for selection and fusion; valid: the test set."""

    fit: MRNetSplit
    tune: MRNetSplit
    valid: MRNetSplit


@dataclass
class EpochRecord:
    epoch: int
    lr: float
    train_loss: float
    train_auc: float
    train_accuracy: float
    train_sensitivity: float
    train_specificity: float
    tune_loss: float
    tune_auc: float
    tune_accuracy: float
    tune_sensitivity: float
    tune_specificity: float
    valid_loss: float
    valid_auc: float
    adversarial_exams: int
    seconds: float


@dataclass
class Progress:
    """Callbacks for the command-line layer (the loop itself never prints)."""

    on_step: Callable[[int, int, float], None] = lambda done, total, loss: None
    on_epoch: Callable[[EpochRecord, int], None] = lambda record, epochs: None
    announce: Callable[[str], None] = field(default=lambda message: None)


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _rng_states() -> dict:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def _restore_rng(states: dict) -> None:
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])


def _to_input(volume: torch.Tensor) -> torch.Tensor:
    """The normalised (S, 3, H, W) input that FGSM perturbs. channels_last: pooling and
    convolutions run several times faster on a CPU this way."""
    return normalise(volume).contiguous(memory_format=torch.channels_last)


@torch.no_grad()
def predict_split(model: MRNet, split: MRNetSplit, plane: str, task: str, device: torch.device,
                  weights: tuple[float, float]) -> tuple[np.ndarray, float]:
    """Exam logits for a whole split (no augmentation), and the mean weighted loss."""
    model.eval()
    logits, losses = [], []
    for volume, label, _ in loader(PlaneDataset(split, plane, task)):
        logit = model.forward_volume(volume.to(device))
        losses.append(weighted_bce(logit, label.to(device), weights).item())
        logits.append(logit.item())
    return np.asarray(logits, dtype=np.float64), float(np.mean(losses)) if losses else float("nan")


def _train_epoch(job: ModelJob, model: MRNet, optimiser, splits: Splits, epoch: int, weights,
                 device: torch.device, progress: Progress) -> tuple[dict, int]:
    """One epoch. Baseline: every fit exam. advtrain/seed: only the FGSM versions of a fraction p.
    advtrain/mixed: every fit exam, the fraction p replaced by its FGSM version."""
    model.train()
    n = len(splits.fit)
    augment = job.preset.augment
    dataset = PlaneDataset(splits.fit, job.plane, job.task, augment=augment)
    if job.mode == "baseline":
        indices, adversarial = np.arange(n), set()
    else:
        chosen = pick_fraction(n, job.spec.retrain_pct / 100.0, job.spec.seed, epoch)
        adversarial = set(chosen.tolist())
        indices = chosen if job.spec.protocol == "seed" else np.arange(n)
    sampler = EpochSampler(indices, job.spec.seed, epoch)
    loss_fn = lambda logit, target: weighted_bce(logit, target, weights)  # noqa: E731 - J of FGSM too
    losses, labels, scores = [], [], []
    for step, (volume, label, index) in enumerate(loader(dataset, sampler, job.spec.workers), start=1):
        volume, y = volume.to(device), label.to(device)
        if index in adversarial:
            x = _to_input(volume)
            logit = model(fgsm(model, x, y, job.spec.eps, clamp=job.spec.clamp, loss_fn=loss_fn))
        else:
            logit = model.forward_volume(volume)
        loss = loss_fn(logit, y)
        optimiser.zero_grad(set_to_none=True)
        loss.backward()
        optimiser.step()
        losses.append(loss.item())
        labels.append(float(label))
        scores.append(logit.item())
        progress.on_step(step, len(indices), float(np.mean(losses)))
    summary = metrics.at_threshold(labels, sigmoid(np.asarray(scores)))
    summary["loss"] = float(np.mean(losses)) if losses else float("nan")
    return summary, len(adversarial)


def _selection_score(record: EpochRecord, select_on: str) -> tuple[float, float]:
    """Higher is better: AUC first, then the lower loss (AUC ties are common on small tuning sets)."""
    auc, loss = ((record.tune_auc, record.tune_loss) if select_on == "tune"
                 else (record.valid_auc, record.valid_loss))
    return (-np.inf if np.isnan(auc) else auc, -loss)


def resolve_device(name: str) -> torch.device:
    """auto: CUDA when torch sees a device, else the CPU; cuda without one is refused."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise InputError("CUDA_UNAVAILABLE", "cuda was asked for, but torch sees no CUDA device here",
                         option="device")
    return torch.device(name)


def fit_model(job: ModelJob, splits: Splits, folder: ModelFolder, progress: Progress | None = None) -> dict:
    """Train one model to completion (or resume it), and return its final summary (done.json)."""
    progress = progress or Progress()
    if folder.finished:
        return folder.summary()
    folder.path.mkdir(parents=True, exist_ok=True)
    device = resolve_device(job.spec.device)
    _seed_everything(job.spec.seed)

    model = MRNet(job.preset.backbone)
    if job.mode == "baseline":
        source = load_pretrained(model, job.spec.pretrained, announce=progress.announce)
        lr = job.preset.lr
    else:
        if not job.init_from:
            raise InputError("BASELINE_INCOMPLETE", f"{job.key}: FGSM retraining needs the baseline model to "
                             "start from", option="from_run")
        model.load_state_dict(load_torch(job.init_from)["model"])
        source = str(job.init_from)
        lr = job.preset.adv_lr
    model = model.to(device).to(memory_format=torch.channels_last)
    optimiser = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=job.preset.weight_decay)
    scheduler = (torch.optim.lr_scheduler.ReduceLROnPlateau(
        optimiser, mode="min", patience=job.preset.plateau_patience, factor=job.preset.plateau_factor)
        if job.mode == "baseline" else None)
    weights = class_weights(splits.fit.labels[job.task])

    history: list[EpochRecord] = []
    best = {"epoch": None, "score": None, "model": None}
    start = 1
    checkpoint_path = folder.checkpoint
    if checkpoint_path.exists():
        state = load_torch(checkpoint_path)
        if state["job"] != job.describe():
            raise InputError("RUN_CONFIG_DIFFERS", "this checkpoint belongs to another configuration; "
                             "choose a new output folder", checkpoint_path)
        model.load_state_dict(state["model"])
        optimiser.load_state_dict(state["optimizer"])
        if scheduler is not None:
            scheduler.load_state_dict(state["lr_scheduler"])
        history = [EpochRecord(**r) for r in state["history"]]
        best = state["best"]
        start = state["epoch"] + 1
        _restore_rng(state["rng"])
        progress.announce(f"{job.key}: resuming after epoch {state['epoch']}")
    elif job.mode == "advtrain":
        # Epoch 0 is the baseline as it starts, so learning curves begin where the baseline ended.
        tune_logits, tune_loss = predict_split(model, splits.tune, job.plane, job.task, device, weights)
        valid_logits, valid_loss = predict_split(model, splits.valid, job.plane, job.task, device, weights)
        tune = metrics.at_threshold(splits.tune.labels[job.task], sigmoid(tune_logits))
        nan = float("nan")
        history.append(EpochRecord(0, lr, nan, nan, nan, nan, nan, tune_loss, tune["auc"], tune["accuracy"],
                                   tune["sensitivity"], tune["specificity"], valid_loss,
                                   metrics.auc(splits.valid.labels[job.task], valid_logits), 0, 0.0))

    for epoch in range(start, job.epochs + 1):
        began = time.perf_counter()
        train, n_adversarial = _train_epoch(job, model, optimiser, splits, epoch, weights, device, progress)
        tune_logits, tune_loss = predict_split(model, splits.tune, job.plane, job.task, device, weights)
        valid_logits, valid_loss = predict_split(model, splits.valid, job.plane, job.task, device, weights)
        tune = metrics.at_threshold(splits.tune.labels[job.task], sigmoid(tune_logits))
        record = EpochRecord(
            epoch=epoch, lr=optimiser.param_groups[0]["lr"], train_loss=train["loss"], train_auc=train["auc"],
            train_accuracy=train["accuracy"], train_sensitivity=train["sensitivity"],
            train_specificity=train["specificity"], tune_loss=tune_loss, tune_auc=tune["auc"],
            tune_accuracy=tune["accuracy"], tune_sensitivity=tune["sensitivity"],
            tune_specificity=tune["specificity"], valid_loss=valid_loss,
            valid_auc=metrics.auc(splits.valid.labels[job.task], valid_logits),
            adversarial_exams=n_adversarial, seconds=time.perf_counter() - began)
        history.append(record)
        if scheduler is not None:
            scheduler.step(tune_loss)
        score = _selection_score(record, job.spec.select_on)
        if best["score"] is None or score > tuple(best["score"]):
            best = {"epoch": epoch, "score": list(score),
                    "model": {k: v.detach().cpu().clone() for k, v in model.state_dict().items()}}
        save_torch({"job": job.describe(), "epoch": epoch, "model": model.state_dict(),
                    "optimizer": optimiser.state_dict(),
                    "lr_scheduler": scheduler.state_dict() if scheduler is not None else None,
                    "history": [asdict(r) for r in history], "best": best, "rng": _rng_states()},
                   checkpoint_path)
        folder.write_metrics(history)
        progress.on_epoch(record, job.epochs)

    return _finish(job, model, best, source, splits, device, weights, folder, history)


def _finish(job, model, best, source, splits, device, weights, folder: ModelFolder, history) -> dict:
    """Predict with the selected epoch's weights, and write best.pt, predictions.csv and done.json."""
    model.load_state_dict(best["model"])
    tune_logits, _ = predict_split(model, splits.tune, job.plane, job.task, device, weights)
    valid_logits, _ = predict_split(model, splits.valid, job.plane, job.task, device, weights)
    tune_labels, valid_labels = splits.tune.labels[job.task], splits.valid.labels[job.task]
    tune_p, valid_p = sigmoid(tune_logits), sigmoid(valid_logits)
    youden = metrics.youden_threshold(tune_labels, tune_p)
    summary = {
        "model": job.key, "plane": job.plane, "task": job.task, "mode": job.mode,
        "backbone": job.preset.backbone, "initial_weights": source, "selected_epoch": best["epoch"],
        "select_on": job.spec.select_on, "eps": job.spec.eps, "retrain_pct": job.spec.retrain_pct,
        "protocol": job.spec.protocol if job.mode == "advtrain" else None, "clamp": job.spec.clamp,
        "youden_threshold": youden,
        "tune": metrics.at_threshold(tune_labels, tune_p),
        "tune_youden": metrics.at_threshold(tune_labels, tune_p, youden),
        "valid": metrics.at_threshold(valid_labels, valid_p),
        "valid_youden": metrics.at_threshold(valid_labels, valid_p, youden),
        "valid_auc_ci95": metrics.bootstrap_auc_ci(valid_labels, valid_p, seed=job.spec.seed),
        "epochs_run": len([r for r in history if r.epoch > 0]),
    }
    save_torch({"model": best["model"], "backbone": job.preset.backbone, "job": job.describe(),
                "summary": summary}, folder.best)
    rows = [("tune", i, int(y), float(z)) for i, y, z in zip(splits.tune.ids, tune_labels, tune_logits)]
    rows += [("valid", i, int(y), float(z)) for i, y, z in zip(splits.valid.ids, valid_labels, valid_logits)]
    folder.write_predictions(rows)
    folder.write_summary(summary)
    # The resume state is no longer needed once done.json exists; it is the largest file.
    folder.checkpoint.unlink(missing_ok=True)
    return summary
