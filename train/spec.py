"""What defines a run and each of its models, as typed data: `RunSpec` and `ModelJob`.

A `RunSpec` is everything that decides a run's numbers (data, preset, planes, tasks, seed, and for
FGSM retraining the baseline run, eps, retrain %, protocol and clamp), plus where it runs (device,
loader workers), which do not. `identity()` is what `run.json` stores and what a folder is keyed and
resumed by; `from_dict` reads it back. A spec checks itself when made, so a bad option fails before
any training starts, with a coded error naming the option. No torch here: the CLIs import it to
validate options cheaply.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from mrnet.infer.errors import InputError
from mrnet.infer.registry import NORMALISED_MAX, NORMALISED_MIN, PLANES, TASKS, model_key

from .presets import Preset

KINDS = ("baseline", "advtrain")
BACKBONES = ("alexnet", "tiny")
PROTOCOLS = ("seed", "mixed")
SELECT_ON = ("tune", "valid")
DEVICES = ("auto", "cpu", "cuda")
PRETRAINED = ("auto", "none", "imagenet")  # or the path of a weights file
# Where an FGSM example may lie after the step, on the normalised scale.
#   valid: the range a real uint8 volume can take after normalisation, [(0-58.09)/49.73, (255-58.09)/49.73].
#   seed-compat: [0, 1], as the paper's published code clamps after normalising. That clips every
#     pixel darker than the mean intensity (about 80 % of them) to 0 and leaves eps nearly
#     irrelevant; it exists only to replicate the paper's numbers.
CLAMPS: dict[str, tuple[float, float]] = {
    "valid": (NORMALISED_MIN, NORMALISED_MAX),
    "seed-compat": (0.0, 1.0),
}
# Where a run runs, not what it computes: left out of its identity.
_VOLATILE = ("device", "workers")


def _choice(value, allowed, option: str) -> None:
    if value not in allowed:
        raise InputError("BAD_OPTION", f"one of {', '.join(allowed)}, not {value!r}", option=option)


@dataclass(frozen=True)
class RunSpec:
    """The configuration of one run (nine models, or a subset of planes and tasks)."""

    data: str
    preset: Preset
    kind: str = "baseline"  # or "advtrain"
    planes: tuple[str, ...] = PLANES
    tasks: tuple[str, ...] = TASKS
    seed: int = 0
    pretrained: str = "auto"
    select_on: str = "tune"
    device: str = "auto"
    from_run: str | None = None  # advtrain: the baseline run folder
    eps: float = 0.0
    retrain_pct: float = 0.0
    protocol: str = "seed"
    clamp: str = "valid"
    workers: int = 0

    def __post_init__(self):
        _choice(self.kind, KINDS, "kind")
        _choice(self.preset.backbone, BACKBONES, "backbone")
        _choice(self.select_on, SELECT_ON, "select_on")
        _choice(self.device, DEVICES, "device")
        _choice(self.protocol, PROTOCOLS, "protocol")
        _choice(self.clamp, tuple(CLAMPS), "clamp")
        for value, allowed, option in ((self.planes, PLANES, "planes"), (self.tasks, TASKS, "tasks")):
            if not value or any(v not in allowed for v in value):
                raise InputError("BAD_OPTION", f"a non-empty subset of {', '.join(allowed)}, not {value!r}",
                                 option=option)
        if not 0 < self.preset.tune_fraction < 1:
            raise InputError("BAD_OPTION", f"within (0, 1), not {self.preset.tune_fraction}", option="tune_fraction")
        if self.kind == "advtrain" and not self.from_run:
            raise InputError("BAD_OPTION", "FGSM retraining starts from a baseline run", option="from_run")
        if self.eps < 0 or not 0 <= self.retrain_pct <= 100:
            raise InputError("BAD_OPTION", f"eps >= 0 and 0 <= retrain % <= 100, not {self.eps} and "
                             f"{self.retrain_pct}", option="eps")

    def identity(self) -> dict:
        """What must match for a folder to be resumed (not the device or the loader workers)."""
        out = asdict(self)
        out["preset"] = self.preset.to_dict()
        out["planes"], out["tasks"] = list(self.planes), list(self.tasks)
        out["data"] = str(Path(self.data).resolve())
        out["from_run"] = str(Path(self.from_run).resolve()) if self.from_run else None
        for volatile in _VOLATILE:
            out.pop(volatile)
        return out

    def config_hash(self) -> str:
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:12]

    @staticmethod
    def from_dict(config: dict, device: str = "auto", workers: int = 0) -> "RunSpec":
        """A spec from its `identity()` (run.json's "config"), to run on `device`."""
        fields = {k: v for k, v in config.items() if k not in ("preset", "planes", "tasks")}
        return RunSpec(**fields, preset=Preset.from_dict(config["preset"]), planes=tuple(config["planes"]),
                       tasks=tuple(config["tasks"]), device=device, workers=workers)

    def advtrain(self, from_run: str | Path, eps: float | None = None, retrain_pct: float | None = None,
                 protocol: str = "seed", clamp: str = "valid", epochs: int | None = None) -> "RunSpec":
        """FGSM retraining of this baseline (trained in `from_run`): the same data, models, seed and
        selection; eps and retrain % default to the preset's."""
        return replace(self, kind="advtrain", from_run=str(from_run),
                       preset=self.preset.with_overrides(adv_epochs=epochs),
                       eps=self.preset.eps if eps is None else eps,
                       retrain_pct=self.preset.retrain_pct if retrain_pct is None else retrain_pct,
                       protocol=protocol, clamp=clamp)


@dataclass(frozen=True)
class ModelJob:
    """One of the run's models: its spec, plane and task, and the weights it starts from."""

    spec: RunSpec
    plane: str
    task: str
    init_from: str | None = None  # advtrain: the baseline model's best.pt

    @property
    def key(self) -> str:
        return model_key(self.plane, self.task)

    @property
    def mode(self) -> str:
        return self.spec.kind

    @property
    def preset(self) -> Preset:
        return self.spec.preset

    @property
    def epochs(self) -> int:
        return self.preset.epochs if self.mode == "baseline" else self.preset.adv_epochs

    def describe(self) -> dict:
        """The job as checkpoints record it (a resumed checkpoint must describe the same job)."""
        s = self.spec
        return {"plane": self.plane, "task": self.task, "preset": s.preset.to_dict(), "mode": s.kind,
                "seed": s.seed, "pretrained": s.pretrained, "init_from": self.init_from, "eps": s.eps,
                "retrain_pct": s.retrain_pct, "protocol": s.protocol, "clamp": s.clamp,
                "select_on": s.select_on, "device": s.device, "workers": s.workers}
