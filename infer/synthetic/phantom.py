"""A synthetic knee phantom that renders MRNet-like exams in the three planes.

The knee is built from analytic shapes in millimetres (origin at the joint line, +x medial,
+y posterior, +z superior, for a right knee; a left knee is the mirror image). Each exam gets a
random pose, size, field of view and slice count, and is rendered as the three sequences MRNet
used: sagittal T2 fat-sat, coronal T1, axial PD fat-sat. Lesions change the anatomy where a
radiologist would look:

* ACL tear: a gap in the ACL band filled with fluid-like signal (or a bright, swollen segment);
* meniscal tear: a bright line through the posterior horn of a meniscus;
* other abnormalities: joint effusion, bone bruise (marrow oedema) or a cartilage defect.

How visible a lesion is depends on the plane (`CONSPICUITY`): the ACL is clearest sagittally, the
menisci sagittally and coronally. `difficulty` (0 easy .. 1 hard) lowers lesion contrast and size
and raises noise, so the tasks stay learnable but not trivial.

numpy and scipy only (the package docstring says why it lives under `mrnet.infer`); `dataset.py`
writes whole data sets of these exams.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from scipy.ndimage import gaussian_filter

from ..reading.intensity import to_uint8
from ..registry import MAX_SLICES, MIN_SLICES, MRNET_PREVALENCE, PLANE_AXES, PLANES, SLICE_SIZE, TASKS
from .shapes import Grid, capsule, cylinder_z, ellipsoid, meniscus_shape

# ---------------------------------------------------------------------------------------------
# Tissues and sequences

TISSUES = ("air", "fat", "muscle", "marrow", "cartilage", "meniscus", "ligament", "fluid", "vessel",
           "torn_acl", "meniscal_tear", "bruise", "cartilage_defect")
T = {name: index for index, name in enumerate(TISSUES)}

# Relative signal of each tissue in the sequence MRNet used for each plane.
SEQUENCES = {"sagittal": "T2 fat-sat", "coronal": "T1", "axial": "PD fat-sat"}
_SIGNAL = {
    #                 air   fat   muscle marrow cart  menis lig   fluid vessel
    "sagittal": np.array([0.0, 0.12, 0.26, 0.16, 0.55, 0.04, 0.05, 0.95, 0.60]),
    "coronal": np.array([0.0, 0.95, 0.40, 0.85, 0.45, 0.08, 0.10, 0.22, 0.30]),
    "axial": np.array([0.0, 0.15, 0.30, 0.18, 0.62, 0.05, 0.06, 0.90, 0.65]),
}
# Lesion tissues blend from the healthy tissue they replace towards a pathological signal
# (fluid or oedema: bright on T2/PD fat-sat; on T1 intermediate, or darker than fatty marrow).
_LESION_BLEND = {  # lesion: (healthy tissue, {plane: pathological signal})
    "torn_acl": ("ligament", {"sagittal": 0.85, "coronal": 0.35, "axial": 0.80}),
    "meniscal_tear": ("meniscus", {"sagittal": 0.85, "coronal": 0.70, "axial": 0.80}),
    "bruise": ("marrow", {"sagittal": 0.70, "coronal": 0.35, "axial": 0.70}),
    "cartilage_defect": ("cartilage", {"sagittal": 0.95, "coronal": 0.22, "axial": 0.90}),
}
# How conspicuous each lesion is in each plane (1 = fully visible): where a radiologist looks.
CONSPICUITY = {
    "torn_acl": {"sagittal": 1.0, "coronal": 0.55, "axial": 0.35},
    "meniscal_tear": {"sagittal": 1.0, "coronal": 0.9, "axial": 0.25},
    "bruise": {"sagittal": 1.0, "coronal": 1.0, "axial": 0.8},
    "cartilage_defect": {"sagittal": 1.0, "coronal": 0.8, "axial": 0.6},
}
# How far each plane's stack reaches along its slice direction (mm), and its field of view.
_COVERAGE_MM = {"axial": (110.0, 150.0), "coronal": (75.0, 100.0), "sagittal": (95.0, 120.0)}
_FOV_MM = (130.0, 170.0)

FINDINGS = ("acl_tear", "meniscal_tear", "effusion", "bone_bruise", "cartilage_defect")


@dataclass(frozen=True)
class PhantomConfig:
    """Settings of the phantom generator; `prevalence` follows MRNet-v1.0 by default."""

    difficulty: float = 0.5
    slice_range: tuple[int, int] = (20, 40)
    prevalence: dict[str, float] = field(default_factory=lambda: dict(MRNET_PREVALENCE))

    def __post_init__(self):
        if not 0.0 <= self.difficulty <= 1.0:
            raise ValueError(f"difficulty must be within 0..1, not {self.difficulty}")
        low, high = self.slice_range
        if not MIN_SLICES <= low <= high <= MAX_SLICES:
            raise ValueError(f"slice range must lie within {MIN_SLICES}..{MAX_SLICES}, not {low}..{high}")
        p = self.prevalence
        if not (0 <= p["acl"] <= p["abnormal"] <= 1 and 0 <= p["meniscus"] <= p["abnormal"]):
            raise ValueError("prevalence must satisfy acl, meniscus <= abnormal <= 1")

    @property
    def contrast(self) -> float:
        return 1.0 - 0.55 * self.difficulty

    @property
    def noise(self) -> float:
        return 0.02 + 0.06 * self.difficulty

    @property
    def lesion_scale(self) -> float:
        return 1.25 - 0.5 * self.difficulty


# ---------------------------------------------------------------------------------------------
# One exam


@dataclass
class ExamSpec:
    """Everything random about one exam, drawn once so that all three planes agree."""

    exam_id: str
    labels: dict[str, int]
    findings: list[str]
    laterality: str
    scale: float
    rotation: np.ndarray
    translation: np.ndarray
    slices: dict[str, int]
    fov_mm: dict[str, float]
    coverage_mm: dict[str, float]
    jitter: dict[str, np.ndarray]
    lesion: dict[str, dict]
    seed: int


def _rotation(rng: np.random.Generator) -> np.ndarray:
    """Flexion about x, rotation about z, varus/valgus about y (degrees drawn per exam)."""
    fx, rz, ry = np.deg2rad([rng.uniform(-5, 15), rng.uniform(-10, 10), rng.uniform(-5, 5)])
    rot_x = np.array([[1, 0, 0], [0, np.cos(fx), -np.sin(fx)], [0, np.sin(fx), np.cos(fx)]])
    rot_y = np.array([[np.cos(ry), 0, np.sin(ry)], [0, 1, 0], [-np.sin(ry), 0, np.cos(ry)]])
    rot_z = np.array([[np.cos(rz), -np.sin(rz), 0], [np.sin(rz), np.cos(rz), 0], [0, 0, 1]])
    return rot_z @ rot_y @ rot_x


def draw_labels(n: int, prevalence: dict[str, float], rng: np.random.Generator) -> list[dict[str, int]]:
    """Labels for n exams with prevalence as close as n allows; ACL or meniscus imply abnormal."""
    n_abnormal = int(round(n * prevalence["abnormal"]))
    abnormal = rng.permutation(n)[:n_abnormal]
    labels = [{task: 0 for task in TASKS} for _ in range(n)]
    for index in abnormal:
        labels[index]["abnormal"] = 1
    for task in ("acl", "meniscus"):
        count = min(int(round(n * prevalence[task])), n_abnormal)
        for index in rng.permutation(abnormal)[:count]:
            labels[index][task] = 1
    return labels


def draw_exam(exam_id: str, labels: dict[str, int], config: PhantomConfig, seed: int) -> ExamSpec:
    rng = np.random.default_rng(seed)
    findings = []
    if labels["acl"]:
        findings.append("acl_tear")
    if labels["meniscus"]:
        findings.append("meniscal_tear")
    if labels["abnormal"]:
        others = [f for f in ("effusion", "bone_bruise", "cartilage_defect") if rng.random() < 0.3]
        if not findings and not others:
            others = [str(rng.choice(["effusion", "bone_bruise", "cartilage_defect"]))]
        findings += others
    s = config.lesion_scale
    lesion = {
        "acl_tear": {"position": rng.uniform(0.35, 0.65), "gap_mm": rng.uniform(8, 12) * s,
                     "complete": bool(rng.random() < 0.7)},
        "meniscal_tear": {"side": "medial" if rng.random() < 0.65 else "lateral",
                          "thickness_mm": rng.uniform(1.2, 2.0) * s, "tilt": rng.uniform(-0.15, 0.15),
                          "sector": float(rng.uniform(-0.3, 0.3))},
        "bone_bruise": {"site": str(rng.choice(["lateral_femur", "lateral_tibia", "medial_femur"])),
                        "radius_mm": rng.uniform(6, 11) * s, "offset": rng.uniform(-4, 4, 3)},
        "effusion": {"size": rng.uniform(0.8, 1.2)},
        "cartilage_defect": {"side": "medial" if rng.random() < 0.5 else "lateral",
                             "radius_mm": rng.uniform(4, 7) * s},
    }
    low, high = config.slice_range
    return ExamSpec(
        exam_id=exam_id, labels=labels, findings=findings,
        laterality="right" if rng.random() < 0.5 else "left",
        scale=float(rng.uniform(0.95, 1.2)),
        rotation=_rotation(rng),
        translation=rng.uniform(-8, 8, 3),
        slices={p: int(rng.integers(low, high + 1)) for p in PLANES},
        fov_mm={p: float(rng.uniform(*_FOV_MM)) for p in PLANES},
        coverage_mm={p: float(rng.uniform(*_COVERAGE_MM[p])) for p in PLANES},
        jitter={p: rng.uniform(0.9, 1.1, len(_SIGNAL[p])) for p in PLANES},
        lesion=lesion,
        seed=int(rng.integers(2**31)),
    )


def _anatomy(spec: ExamSpec) -> list[tuple[str, tuple]]:
    """The healthy knee, in painting order (later shapes cover earlier ones)."""
    shapes = [
        ("fat", cylinder_z((0, 4), (62, 56), -200, 200)),
        ("muscle", cylinder_z((0, 26), (44, 26), -200, 200)),
        ("muscle", cylinder_z((0, -22), (40, 20), 45, 200)),
        ("fat", ellipsoid((0, -26, -6), (18, 12, 14))),  # Hoffa's fat pad
        ("vessel", cylinder_z((2, 34), (4, 4), -200, 200)),
    ]
    effusion = spec.lesion["effusion"]["size"] if "effusion" in spec.findings else 0.0
    recess = (20, 3, 9) if not effusion else (26 * effusion, 9 * effusion, 17 * effusion)
    shapes.append(("fluid", ellipsoid((0, -20, 34), recess)))  # suprapatellar recess
    if effusion:
        shapes.append(("fluid", ellipsoid((0, 22, 6), (24 * effusion, 6, 10))))  # posterior recess
    condyles = [((19, 4, 14), (15, 24, 12)), ((-19, 4, 14), (14, 23, 12)),
                ((0, -8, 18), (28, 13, 12))]  # medial, lateral, trochlea
    # Cartilage is the bone grown by 2.5 mm; the marrow painted next leaves only the rim.
    shapes += [("cartilage", ellipsoid(c, np.add(r, 2.5))) for c, r in condyles]
    shapes += [
        ("marrow", cylinder_z((0, 2), (15, 15), 30, 200)),
        ("marrow", ellipsoid((0, 2, 32), (38, 24, 18))),
        *[("marrow", ellipsoid(c, r)) for c, r in condyles],
        ("cartilage", cylinder_z((19, 4), (15, 20), -3.2, -0.6)),
        ("cartilage", cylinder_z((-19, 4), (14, 19), -3.2, -0.6)),
        ("marrow", cylinder_z((0, 3), (38, 26), -32, -3.2)),
        ("marrow", cylinder_z((0, 5), (16, 16), -200, -32)),
        ("marrow", ellipsoid((0, 2, -3), (6, 8, 4))),  # tibial spines
        ("marrow", ellipsoid((-31, 14, -26), (8, 8, 10))),  # fibular head
        ("cartilage", ellipsoid((0, -35, 20), (19, 9, 17))),
        ("marrow", ellipsoid((0, -37.5, 20), (18, 7, 16))),  # patella
        ("ligament", capsule((0, -44, 2), (0, -27, -28), 4.5)),  # patellar tendon
        ("ligament", capsule((0, -42, 38), (0, -22, 70), 4.5)),  # quadriceps tendon
        ("ligament", capsule((36, 5, 22), (38, 2, -28), 2.5)),  # MCL
        ("ligament", capsule((-34, 8, 18), (-31, 14, -22), 2.5)),  # LCL
        ("meniscus", meniscus_shape((19, 4), 8, 15.5, 5.0, 0.55, -0.9)),
        ("meniscus", meniscus_shape((-19, 4), 7, 14.5, 4.5, 0.35, -0.9)),
        ("ligament", capsule(*_ACL, 4.0)),
        ("ligament", capsule((0, 22, -7), (9, -2, 16), 5.0)),  # PCL
    ]
    return shapes


_ACL = ((2.0, -6.0, -2.0), (-9.0, 14.0, 14.0))  # tibial footprint -> lateral femoral condyle


# Soft tissue that an oedematous lesion may replace (it does not eat bone or cartilage).
_SOFT = ("ligament", "fat", "fluid")


def _lesions(spec: ExamSpec) -> list[tuple[str, str, tuple, tuple | None]]:
    """(finding, tissue, shape, tissues it may replace or None for all) for each lesion of the exam."""
    out = []
    lesion = spec.lesion
    if "acl_tear" in spec.findings:
        tear = lesion["acl_tear"]
        start, end = np.asarray(_ACL[0]), np.asarray(_ACL[1])
        where = start + tear["position"] * (end - start)
        if tear["complete"]:
            # Fibres gone over the gap, and an oedematous mass filling that part of the notch.
            r = tear["gap_mm"]
            out.append(("acl_tear", "torn_acl", ellipsoid(where, (0.8 * r, r, 0.8 * r)), _SOFT))
        else:
            # A partial tear: a swollen, bright ligament over half its length.
            t = (tear["position"] - 0.25, tear["position"] + 0.25)
            out.append(("acl_tear", "torn_acl", capsule(start, end, 5.5, t_range=t), _SOFT))
    if "meniscal_tear" in spec.findings:
        tear = lesion["meniscal_tear"]
        medial = tear["side"] == "medial"
        center, r_in, r_out, height = ((19, 4), 8, 15.5, 5.0) if medial else ((-19, 4), 7, 14.5, 4.5)
        sector = (tear["sector"] - 0.9, tear["sector"] + 0.9)
        out.append(("meniscal_tear", "meniscal_tear",
                    meniscus_shape(center, r_in - 0.5, r_out + 0.5, height, 0.0, -0.9, sector=sector,
                              thickness=tear["thickness_mm"], tilt=tear["tilt"]), None))
    if "bone_bruise" in spec.findings:
        bruise = lesion["bone_bruise"]
        centers = {"lateral_femur": (-19, 8, 8), "lateral_tibia": (-19, 6, -10), "medial_femur": (19, 8, 8)}
        center = np.add(centers[bruise["site"]], bruise["offset"])
        r = bruise["radius_mm"]
        out.append(("bone_bruise", "bruise", ellipsoid(center, (r, r * 1.2, r * 0.8)), ("marrow",)))
    if "cartilage_defect" in spec.findings:
        defect = lesion["cartilage_defect"]
        x = 19 if defect["side"] == "medial" else -19
        r = defect["radius_mm"]
        out.append(("cartilage_defect", "cartilage_defect", ellipsoid((x, 6, 0.5), (r, r, 3.2)), ("cartilage",)))
    return out


def _plane_grid(spec: ExamSpec, plane: str) -> Grid:
    """The affine map from this plane's array indices to the knee's anatomy coordinates."""
    axes = PLANE_AXES[plane]
    n_slices = spec.slices[plane]
    pixel = spec.fov_mm[plane] / SLICE_SIZE
    spacing = spec.coverage_mm[plane] / n_slices
    half = (SLICE_SIZE - 1) / 2
    # world = centre + (k - (S-1)/2) * spacing * slice + (i - half) * pixel * row + (j - half) * pixel * col
    columns = np.stack([np.multiply(axes.slice, spacing), np.multiply(axes.row, pixel),
                        np.multiply(axes.col, pixel)], axis=1)
    offset = -(n_slices - 1) / 2 * columns[:, 0] - half * columns[:, 1] - half * columns[:, 2]
    world = np.hstack([columns, offset[:, None]])  # index -> world (knee-centred scanner mm)
    world[:, 3] -= spec.translation
    mirror = np.diag([-1.0 if spec.laterality == "left" else 1.0, 1.0, 1.0])
    anatomy = mirror @ spec.rotation.T @ world / spec.scale
    return Grid(anatomy, (n_slices, SLICE_SIZE, SLICE_SIZE))


def _paint(grid: Grid, labels: np.ndarray, tissue: str, shape, replaces=None) -> None:
    """Paint a shape's voxels with a tissue (only over the `replaces` tissues, when given)."""
    mask_fn, low, high = shape
    block, coords = grid.block(low, high)
    if block is None:
        return
    mask = mask_fn(*coords)
    target = labels[block]
    if replaces is not None:
        mask &= np.isin(target, [T[name] for name in replaces])
    target[mask] = T[tissue]


def _bias_field(shape, rng: np.random.Generator) -> np.ndarray:
    """A smooth multiplicative inhomogeneity (a receive coil's falloff), about +-25 %."""
    _, rows, cols = shape
    y = np.linspace(-1, 1, rows, dtype=np.float32)[:, None]
    x = np.linspace(-1, 1, cols, dtype=np.float32)[None, :]
    gx, gy = rng.uniform(-0.15, 0.15, 2)
    cx, cy = rng.uniform(-0.6, 0.6, 2)
    bump = np.exp(-((x - cx) ** 2 + (y - cy) ** 2) / 0.8)
    field = 0.85 + gx * x + gy * y + 0.3 * bump
    return field[None].astype(np.float32)


def render_tissues(spec: ExamSpec, plane: str) -> tuple[np.ndarray, list]:
    """The tissue map of one plane (indices into `TISSUES`), and the exam's lesions."""
    grid = _plane_grid(spec, plane)
    labels = np.zeros(grid.shape, dtype=np.uint8)
    for tissue, shape in _anatomy(spec):
        _paint(grid, labels, tissue, shape)
    lesions = _lesions(spec)
    for _, tissue, shape, replaces in lesions:
        _paint(grid, labels, tissue, shape, replaces)
    return labels, lesions


def _bounding_box(mask: np.ndarray) -> dict | None:
    """First and last slice, and the inclusive in-plane box, of a 3D mask (None when empty)."""
    ranges = []
    for axis in range(3):
        hits = np.flatnonzero(mask.any(axis=tuple(a for a in range(3) if a != axis)))
        if hits.size == 0:
            return None
        ranges.append((int(hits[0]), int(hits[-1])))
    (k0, k1), (i0, i1), (j0, j1) = ranges
    return {"slices": [k0, k1], "box": [i0, j0, i1, j1]}


def render_plane(spec: ExamSpec, plane: str, config: PhantomConfig) -> tuple[np.ndarray, dict]:
    """Render one plane as an MRNet volume (uint8, S x 256 x 256) and the lesion boxes seen in it."""
    labels, lesions = render_tissues(spec, plane)

    signal = _SIGNAL[plane] * spec.jitter[plane]
    lut = np.zeros(len(TISSUES), dtype=np.float32)
    lut[: len(signal)] = signal
    for lesion, (healthy, target) in _LESION_BLEND.items():
        weight = config.contrast * CONSPICUITY[lesion][plane]
        lut[T[lesion]] = (1 - weight) * lut[T[healthy]] + weight * target[plane]
    image = lut[labels]
    image = gaussian_filter(image, sigma=(0, 0.7, 0.7), truncate=2.5)
    rng = np.random.default_rng([spec.seed, PLANES.index(plane)])
    image *= _bias_field(image.shape, rng)
    # Magnitude images carry Rician noise: |signal + complex Gaussian noise|.
    sigma = np.float32(config.noise)
    real = image + rng.standard_normal(image.shape, dtype=np.float32) * sigma
    imag = rng.standard_normal(image.shape, dtype=np.float32) * sigma
    image = np.sqrt(real * real + imag * imag)

    boxes = {}
    for finding, tissue, _, _ in lesions:
        found = _bounding_box(labels == T[tissue])
        if found:
            boxes[finding] = found
    return to_uint8(image), boxes


def render_exam(spec: ExamSpec, config: PhantomConfig) -> tuple[dict[str, np.ndarray], dict]:
    """All three planes of one exam, and its record for phantom.json."""
    volumes, boxes = {}, {}
    for plane in PLANES:
        volumes[plane], boxes[plane] = render_plane(spec, plane, config)
    record = {
        "labels": spec.labels,
        "findings": spec.findings,
        "laterality": spec.laterality,
        "slices": spec.slices,
        "lesion_boxes": {f: {p: boxes[p][f] for p in PLANES if f in boxes[p]} for f in spec.findings},
    }
    return volumes, record


def make_exam(seed: int = 0, labels: dict[str, int] | None = None,
              config: PhantomConfig | None = None) -> tuple[dict[str, np.ndarray], dict]:
    """One phantom exam in memory (for examples and tests)."""
    config = config or PhantomConfig()
    labels = labels or {"abnormal": 1, "acl": 1, "meniscus": 0}
    return render_exam(draw_exam("0000", labels, config, seed), config)
