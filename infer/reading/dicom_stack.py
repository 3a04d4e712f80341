"""One series' images as a regular stack: ordered along the slice normal, checked, then decoded.

Slices are ordered by their position projected on the slice normal, never by InstanceNumber or
file name. A damaged file is left out when the slices that remain still form a regular stack.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import pydicom
from pydicom.uid import UID

from .archive import Source
from .dicom_headers import ImageHeader
from .geometry import Stack, unit
from .types import Skipped

# Geometry tolerances (docs/conventions.md explains them).
ORIENTATION_TOLERANCE_DEG = 1.0  # images of one stack may differ in orientation by this much
DUPLICATE_TOLERANCE_MM = 0.01  # positions closer than this along the normal are the same slice
SPACING_TOLERANCE = 0.10  # every gap between slices must be within 10 % of the median gap,
SPACING_TOLERANCE_MM = 0.10  # or within 0.1 mm of it, whichever is larger


@dataclass
class SliceStack:
    images: list[ImageHeader]  # ordered along the normal, duplicates left out
    normal: np.ndarray
    spacing: float
    duplicates: int


def check_stack(images: list[ImageHeader], min_slices: int) -> SliceStack:
    """Order the images along the slice normal and check that they form one regular stack."""
    first = images[0]
    for image in images[1:]:
        if (image.rows, image.cols) != (first.rows, first.cols) or not np.allclose(image.pixel_mm, first.pixel_mm,
                                                                                   rtol=1e-3):
            raise Skipped("INCONSISTENT_MATRIX", f"{image.name} is {image.rows}x{image.cols} at "
                        f"{image.pixel_mm[0]:g}x{image.pixel_mm[1]:g} mm, {first.name} is {first.rows}x{first.cols} "
                        f"at {first.pixel_mm[0]:g}x{first.pixel_mm[1]:g} mm")
    limit = np.cos(np.radians(ORIENTATION_TOLERANCE_DEG))
    for image in images[1:]:
        if image.along_row @ first.along_row < limit or image.along_col @ first.along_col < limit:
            raise Skipped("INCONSISTENT_ORIENTATION", f"{image.name} and {first.name} are oriented differently: "
                        "the series mixes planes")
    normal = unit(np.cross(first.along_row, first.along_col))
    ordered = sorted(images, key=lambda im: (float(im.position @ normal), im.instance, im.name))
    kept = [ordered[0]]
    for image in ordered[1:]:
        if float((image.position - kept[-1].position) @ normal) >= DUPLICATE_TOLERANCE_MM:
            kept.append(image)
    if len(kept) < max(min_slices, 2):
        raise Skipped("TOO_FEW_SLICES", f"{len(kept)} slice position(s), fewer than {max(min_slices, 2)}: "
                    "a localizer or an incomplete series")
    along = np.array([float(im.position @ normal) for im in kept])
    gaps = np.diff(along)
    typical = float(np.median(gaps))
    tolerance = max(SPACING_TOLERANCE * typical, SPACING_TOLERANCE_MM)
    worst = int(np.argmax(np.abs(gaps - typical)))
    if abs(gaps[worst] - typical) > tolerance:
        hint = " (a missing slice?)" if gaps[worst] > typical else ""
        raise Skipped("INCONSISTENT_SPACING", f"{gaps[worst]:.2f} mm between {kept[worst].name} and "
                    f"{kept[worst + 1].name}, where slices are {typical:.2f} mm apart{hint}")
    return SliceStack(kept, normal, float(np.mean(gaps)), len(ordered) - len(kept))


def decode_frames(source: Source) -> tuple[np.ndarray, bool]:
    """All frames of a file as (frames, rows, cols), and whether it is MONOCHROME1."""
    with source.open_binary() as handle, warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(handle)
        try:
            pixels = ds.pixel_array
        except (NotImplementedError, RuntimeError) as error:
            # pydicom says "does not support" when a plug-in cannot handle this syntax or precision.
            if isinstance(error, NotImplementedError) or "not support" in str(error):
                syntax = UID(str(ds.file_meta.get("TransferSyntaxUID", ""))).name
                raise Skipped("UNSUPPORTED_TRANSFER_SYNTAX", f"{source.name}: {syntax} pixel data cannot be "
                            "decoded with the installed plug-ins (see README, DICOM support)") from None
            raise Skipped("CORRUPT_FILE", f"{source.name}: pixel data cannot be decoded") from None
        except Exception as error:  # noqa: BLE001  (truncated or malformed pixel data)
            raise Skipped("CORRUPT_FILE", f"{source.name}: damaged pixel data ({type(error).__name__})") from None
    inverted = str(ds.get("PhotometricInterpretation", "")).strip().upper() == "MONOCHROME1"
    return (pixels if pixels.ndim == 3 else pixels[None]), inverted


def load_pixels(stack: SliceStack, label: str) -> tuple[Stack, SliceStack, list[str]]:
    """Decode, rescale and stack the chosen images; a damaged file is left out with a warning
    when the slices that remain still form a regular stack."""
    decoded: dict[str, tuple[np.ndarray, bool] | Skipped] = {}
    slices, kept, notes = [], [], []
    for image in stack.images:
        key = image.source.name
        if key not in decoded:
            try:
                decoded[key] = decode_frames(image.source)
            except Skipped as skip:
                if skip.code == "UNSUPPORTED_TRANSFER_SYNTAX":
                    raise
                decoded[key] = skip
                notes.append(f"{skip.message}; left out [{skip.code}]")
        if isinstance(decoded[key], Skipped):
            continue
        frames, inverted = decoded[key]
        pixels = frames[image.frame or 0].astype(np.float32) * np.float32(image.slope) + np.float32(image.intercept)
        # MONOCHROME1 shows low values bright; negating keeps "bright is high" for the windowing.
        slices.append(-pixels if inverted else pixels)
        kept.append(image)
    if len(kept) < len(stack.images):
        try:
            stack = check_stack(kept, min_slices=2)
        except Skipped as skip:
            damaged = [im.name for im in stack.images if im not in kept]
            raise Skipped(skip.code, f"{label}: damaged pixel data in {', '.join(damaged[:3])}"
                        f"{' and more' if len(damaged) > 3 else ''}; without it, {skip.message}") from None
    directions = np.stack([stack.normal, kept[0].along_col, kept[0].along_row])
    spacing = (stack.spacing, kept[0].pixel_mm[0], kept[0].pixel_mm[1])
    return Stack(np.stack(slices), directions, spacing), stack, notes
