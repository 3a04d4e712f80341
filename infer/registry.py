"""The one registry of the MRNet domain: planes, tasks, splits and the input constants.

Every other module imports these names instead of spelling them out, so the CLI, the
trainer, the exporter and the app cannot drift apart.
"""

from __future__ import annotations

from dataclasses import dataclass

PLANES: tuple[str, ...] = ("axial", "coronal", "sagittal")
TASKS: tuple[str, ...] = ("abnormal", "acl", "meniscus")
SPLITS: tuple[str, ...] = ("train", "valid")

TASK_TITLES: dict[str, str] = {
    "abnormal": "Abnormal",
    "acl": "ACL tear",
    "meniscus": "Meniscal tear",
}

# MRNet-v1.0 volumes: uint8, (S, 256, 256), S from 17 to 61, every volume spanning 0..255.
SLICE_SIZE = 256
MIN_SLICES = 17
MAX_SLICES = 61
VOLUME_DTYPE = "uint8"

# mrnet-baseline's input normalisation, applied to the uint8 values.
INTENSITY_MEAN = 58.09
INTENSITY_STD = 49.73
# The range a normalised input can take; adversarial examples are clamped to it.
NORMALISED_MIN = (0.0 - INTENSITY_MEAN) / INTENSITY_STD
NORMALISED_MAX = (255.0 - INTENSITY_MEAN) / INTENSITY_STD
# Bumped whenever the in-graph preprocessing changes; bundles record it.
PREPROCESSING_VERSION = "mrnet-v1:uint8/(x-58.09)/49.73/rgb-repeat"

# Official split sizes of MRNet-v1.0: train ids 0000-1129, valid ids 1130-1249.
MRNET_TRAIN_EXAMS = 1130
MRNET_VALID_EXAMS = 120
# Label prevalence in MRNet-v1.0 (Bien et al. 2018), used as the phantom's default.
MRNET_PREVALENCE: dict[str, float] = {"abnormal": 0.806, "acl": 0.233, "meniscus": 0.371}

# Robust intensity window used to bring any scanner's volume to 0..255 (see docs/conventions.md).
INTENSITY_PERCENTILES = (0.5, 99.5)

NOT_FOR_CLINICAL_USE = "Not for clinical use: research software."


@dataclass(frozen=True)
class PlaneAxes:
    """Which patient direction each array axis of an MRNet volume points to.

    Directions are unit vectors in DICOM patient coordinates (LPS: +x left, +y posterior,
    +z superior). `row` is where increasing row index goes (down the image), `col` where
    increasing column index goes (right in the image), `slice` where increasing slice index goes.
    """

    row: tuple[float, float, float]
    col: tuple[float, float, float]
    slice: tuple[float, float, float]


# The orientation the real MRNet volumes show:
#   axial: anterior at the top, patient right on the image left, slices superior -> inferior;
#   coronal: superior at the top, patient right on the image left, slices posterior -> anterior;
#   sagittal: superior at the top, anterior on the left, slices patient right -> left.
PLANE_AXES: dict[str, PlaneAxes] = {
    "axial": PlaneAxes(row=(0, 1, 0), col=(1, 0, 0), slice=(0, 0, -1)),
    "coronal": PlaneAxes(row=(0, 0, -1), col=(1, 0, 0), slice=(0, -1, 0)),
    "sagittal": PlaneAxes(row=(0, 0, -1), col=(0, 1, 0), slice=(1, 0, 0)),
}


def model_key(plane: str, task: str) -> str:
    """The name of one of the nine models, e.g. ``sagittal-acl``."""
    return f"{plane}-{task}"


def parse_choices(text: str | None, allowed: tuple[str, ...], what: str) -> tuple[str, ...]:
    """Parse a comma-separated subset of `allowed` ("all" or empty means all), keeping registry order."""
    if text is None or text.strip() in ("", "all"):
        return allowed
    chosen = [part.strip().lower() for part in text.split(",") if part.strip()]
    unknown = [c for c in chosen if c not in allowed]
    if unknown:
        raise ValueError(f"unknown {what} {', '.join(unknown)}: choose from {', '.join(allowed)}")
    return tuple(a for a in allowed if a in chosen)
