"""MRNet npy files: the arrays are MRNet volumes already, their plane is in their name."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..registry import PLANE_AXES, PLANES, SLICE_SIZE
from .geometry import direction_letter
from .types import Exam, Problem, SeriesInfo, nothing_usable


def plane_from_name(name: str) -> str | None:
    """The plane a file name spells: its own name first, then its folder's (MRNet's layout is
    `train/sagittal/0000.npy`)."""
    parts = [part.lower() for part in re.split(r"[\\/]", name) if part]
    for part in reversed(parts[-2:]):
        found = [p for p in PLANES if p in part]
        if len(found) == 1:
            return found[0]
    return None


def read_npy(sources, skipped: list[Problem] | None = None) -> Exam:
    """MRNet npy volumes (uint8, S x 256 x 256), the plane of each given by its name."""
    skipped = list(skipped or [])
    volumes, infos, problems = {}, {}, []
    for source in sources:
        # A file given by itself is named without its folder; its folder may still name the plane.
        plane = plane_from_name(f"{source.path.parent.name}/{source.path.name}" if source.path else source.name)
        if plane is None:
            problems.append(Problem("UNKNOWN_PLANE", source.name,
                                    f"the file name names no plane ({', '.join(PLANES)})"))
            continue
        try:
            with source.open_binary() as handle:
                volume = np.load(handle, allow_pickle=False)
        except (ValueError, OSError, EOFError) as error:
            problems.append(Problem("CORRUPT_FILE", source.name, f"not a readable npy file ({type(error).__name__})"))
            continue
        if volume.dtype != np.uint8 or volume.ndim != 3 or volume.shape[1:] != (SLICE_SIZE, SLICE_SIZE):
            problems.append(Problem("INVALID_VOLUME", source.name,
                                    f"an MRNet volume is uint8 (S, {SLICE_SIZE}, {SLICE_SIZE}), "
                                    f"this is {volume.dtype} {volume.shape}"))
            continue
        if plane in volumes:
            problems.append(Problem("NOT_CHOSEN", source.name, f"a second {plane} volume; "
                                    f"using {infos[plane].source}"))
            continue
        volumes[plane] = volume
        axes = PLANE_AXES[plane]
        infos[plane] = SeriesInfo(
            plane=plane, source=source.name, description=Path(source.name).name, n_slices=volume.shape[0],
            reason="MRNet npy volume; plane from the file name",
            orientation="".join(direction_letter(v) for v in (axes.row, axes.col, axes.slice)),
            obliquity_deg=0.0)
    if not volumes:
        raise nothing_usable(problems, f"none of the {len(sources)} npy files is usable")
    skipped += problems
    return Exam("npy", volumes, infos, skipped=skipped)
