"""Read NIfTI files (one per plane) into MRNet volumes.

The affine says where each array axis points. NIfTI world coordinates are RAS (+x right, +y
anterior, +z superior); the registry, like DICOM, uses LPS, so x and y change sign first. The
slice axis is the one with the thickest voxels (2D knee sequences have 3-4 mm slices and sub-mm
pixels), or, for near-isotropic voxels, the third array axis as converters such as dcm2niix write
it. Its direction gives the plane; a plane named in the file name breaks ties and is checked
against the affine.
"""

from __future__ import annotations

import gzip
from pathlib import Path

import nibabel as nib
import numpy as np

from ..registry import MAX_SLICES, MIN_SLICES, PLANE_AXES, PLANES
from .archive import Source
from .geometry import OBLIQUE_LIMIT_DEG, Stack, plane_of_normal, to_mrnet
from .npy import plane_from_name
from .types import Exam, Problem, SeriesInfo, Skipped, nothing_usable

_RAS_TO_LPS = np.diag([-1.0, -1.0, 1.0])
# Voxels count as near-isotropic (no thickest axis) when the thickest is within 20 % of the next.
_ANISOTROPY = 1.2


def _load(source: Source):
    try:
        if source.data is None:
            return nib.load(source.path)
        data = gzip.decompress(source.data) if source.name.lower().endswith(".gz") else source.data
        return nib.Nifti1Image.from_bytes(data)
    except Exception as error:  # noqa: BLE001  (any parser failure means the same: unreadable)
        raise Skipped("CORRUPT_FILE", f"not a readable NIfTI file ({type(error).__name__})") from None


def _slice_axis(spacing: np.ndarray, directions: np.ndarray, hint: str | None) -> tuple[int, str]:
    order = np.argsort(spacing)[::-1]
    if spacing[order[0]] >= _ANISOTROPY * spacing[order[1]]:
        return int(order[0]), f"slices along the thickest voxel axis ({spacing[order[0]]:.2f} mm)"
    if hint is not None:
        normal = np.asarray(PLANE_AXES[hint].slice, float)
        axis = int(np.argmax(np.abs(directions @ normal)))
        return axis, f"near-isotropic voxels: slices along the axis closest to the {hint} normal (file name)"
    return 2, "near-isotropic voxels: slices along the third array axis"


def _read_one(source: Source, warnings: list[str]) -> tuple[str, np.ndarray, SeriesInfo]:
    image = _load(source)
    header = image.header
    if int(header["qform_code"]) == 0 and int(header["sform_code"]) == 0:
        raise Skipped("MISSING_ORIENTATION", "the header sets no orientation (qform and sform codes are 0)")
    data = image.get_fdata(dtype=np.float32)  # applies scl_slope and scl_inter
    while data.ndim > 3 and data.shape[-1] == 1:
        data = data[..., 0]
    if data.ndim == 4:
        warnings.append(f"{source.name}: {data.shape[3]} volumes (echoes or time points); the first is used")
        data = data[..., 0]
    if data.ndim != 3 or min(data.shape) < 2:
        raise Skipped("TOO_FEW_SLICES", f"a {data.ndim}D image of shape {data.shape}, not a stack of slices")

    lps = _RAS_TO_LPS @ image.affine[:3, :3]
    spacing = np.linalg.norm(lps, axis=0)
    if np.any(spacing <= 0):
        raise Skipped("MISSING_ORIENTATION", "the affine is singular")
    directions = (lps / spacing).T  # one row per array axis
    hint = plane_from_name(source.name)
    axis, why = _slice_axis(spacing, directions, hint)
    in_plane = [a for a in range(3) if a != axis]
    order = [axis, *in_plane]
    stack = Stack(np.transpose(data, order), directions[order], tuple(float(spacing[a]) for a in order))
    plane, obliquity = plane_of_normal(stack.directions[0])
    if obliquity > OBLIQUE_LIMIT_DEG:
        raise Skipped("OBLIQUE", f"slices {obliquity:.0f} degrees off the {plane} plane, more than the "
                    f"{OBLIQUE_LIMIT_DEG:g} allowed")
    if hint is not None and hint != plane:
        warnings.append(f"{source.name}: the file name says {hint}, the affine says {plane}; the affine is used")
    n = stack.data.shape[0]
    if not MIN_SLICES <= n <= MAX_SLICES:
        warnings.append(f"{plane}: {n} slices, where MRNet volumes have {MIN_SLICES} to {MAX_SLICES}")
    reason = f"{plane} from the affine: {why}, {obliquity:.0f} degrees oblique"
    if hint == plane:
        reason += "; the file name agrees"
    info = SeriesInfo(
        plane=plane, source=source.name, description=Path(source.name).name, n_slices=n, reason=reason,
        matrix=(stack.data.shape[1], stack.data.shape[2]),
        spacing_mm=tuple(round(s, 4) for s in (stack.spacing[1], stack.spacing[2], stack.spacing[0])),
        orientation=stack.orientation, obliquity_deg=round(obliquity, 2))
    return plane, to_mrnet(stack, plane), info


def read_nifti(sources: list[Source], skipped: list[Problem] | None = None) -> Exam:
    """Read NIfTI files, one plane each, into an `Exam`. When two files show the same plane, the
    one whose name says that plane wins, then the one with more slices."""
    skipped = list(skipped or [])
    warnings: list[str] = []
    read, problems = [], []
    for source in sources:
        try:
            read.append((source, *_read_one(source, warnings)))
        except Skipped as skip:
            problems.append(Problem(skip.code, source.name, skip.message))
    volumes, infos = {}, {}
    for plane in PLANES:
        mine = [r for r in read if r[1] == plane]
        mine.sort(key=lambda r: (plane_from_name(r[0].name) != plane, -r[2].shape[0], r[0].name))
        for source, _, volume, info in mine[:1]:
            volumes[plane], infos[plane] = volume, info
        for source, _, volume, _ in mine[1:]:
            problems.append(Problem("NOT_CHOSEN", source.name, f"a second {plane} volume; "
                                    f"{infos[plane].source} was chosen"))
    if not volumes:
        raise nothing_usable(problems, f"none of the {len(sources)} NIfTI files is usable")
    return Exam("nifti", volumes, infos, skipped=skipped + problems, warnings=warnings)
