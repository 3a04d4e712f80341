"""Which series is each plane: one echo per multi-echo series, then the series that best matches
the sequence MRNet used for its plane, by the rules kept as data in `series_rules.json`.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from importlib import resources

import numpy as np
from pydicom.uid import UID

from .dicom_headers import ImageHeader, SeriesHeader, decodable
from .dicom_stack import SliceStack, check_stack
from .geometry import OBLIQUE_LIMIT_DEG, plane_of_normal
from .types import EchoInfo, Skipped


@lru_cache(maxsize=1)
def series_rules() -> dict:
    """The series-selection rules shipped with the package (`series_rules.json`)."""
    text = resources.files(__package__).joinpath("series_rules.json").read_text(encoding="utf-8")
    return json.loads(text)


def split_echoes(images: list[ImageHeader]) -> dict[tuple, list[ImageHeader]]:
    echoes: dict[tuple, list[ImageHeader]] = {}
    for image in images:
        te = round(image.echo_time, 2) if image.echo_time is not None else None
        echoes.setdefault((image.echo_number, te), []).append(image)
    if len(echoes) > 1 and all(te is not None for _, te in echoes):
        # Echo numbers are only labels; the same echo time is the same echo.
        by_time: dict[tuple, list[ImageHeader]] = {}
        for (_, te), group in echoes.items():
            by_time.setdefault((None, te), []).extend(group)
        echoes = by_time
    return echoes


def choose_echo(echoes: dict[tuple, list[ImageHeader]], plane: str,
                rules: dict) -> tuple[list[ImageHeader], EchoInfo | None]:
    """One echo of a multi-echo series: the one whose echo time is closest to the sequence MRNet
    used for the plane (ties go to the shorter echo); without echo times, the first echo."""
    if len(echoes) == 1:
        return next(iter(echoes.values())), None
    plane_rules = rules["planes"][plane]
    target = float(plane_rules["target_echo_time_ms"])
    times = sorted({te for _, te in echoes if te is not None})
    if times:
        key = min((k for k in echoes if k[1] is not None), key=lambda k: (abs(k[1] - target), k[1]))
        images = echoes[key]
        numbers = {im.echo_number for im in images}
        number = numbers.pop() if len(numbers) == 1 and None not in numbers else times.index(key[1]) + 1
        rule = (f"the echo time closest to {target:g} ms, as MRNet's {plane} {plane_rules['sequence']}"
                f" (echo times {', '.join(f'{t:g}' for t in times)} ms)")
        return images, EchoInfo(number, images[0].echo_time, len(echoes), rule)
    key = min(echoes, key=lambda k: (k[0] is None, k[0] or 0))
    return echoes[key], EchoInfo(key[0], None, len(echoes), "the first echo: the series has no echo times")


@dataclass
class Candidate:
    series: SeriesHeader
    plane: str
    obliquity: float
    images: list[ImageHeader]
    echo: EchoInfo | None
    stack: SliceStack | None = None
    hard: Skipped | None = None  # cannot be read as a volume
    soft: Skipped | None = None  # can be read, but is not what MRNet saw (the caller may still choose it)
    score: int = 0
    matched: list[str] = field(default_factory=list)

    @property
    def echo_time(self) -> float | None:
        return self.images[0].echo_time

    @property
    def problem(self) -> Skipped | None:
        """The reason to report when the series is left out."""
        if self.soft is not None and self.soft.code == "LOCALIZER":
            return self.soft
        return self.hard or self.soft

    def rank(self):
        first = self.images[0]
        n = len(self.stack.images) if self.stack else 0
        return (-self.score, -n, -(first.rows * first.cols),
                self.series.number if self.series.number is not None else 1 << 30, self.series.uid)


def _search(patterns, text: str) -> bool:
    return any(re.search(pattern, text) for pattern in patterns)


def _in_range(value, bounds) -> bool:
    return value is not None and bounds[0] <= value <= bounds[1]


def _score(candidate: Candidate, rules: dict) -> None:
    """How well a series matches the sequence MRNet used for its plane (see series_rules.json)."""
    series, plane_rules, weights = candidate.series, rules["planes"][candidate.plane], rules["score"]
    description = series.description.lower()
    want = plane_rules["weighting"]
    said = [w for w, patterns in rules["weightings"].items() if _search(patterns, description)]
    score, matched = 0, []
    if want in said:
        score += weights["description_weighting"]
        matched.append(f"described as {want}")
    elif said:
        score += weights["description_other_weighting"]
        matched.append(f"described as {'/'.join(said)}, not {want}")
    if _in_range(candidate.echo_time, plane_rules["echo_time_ms"]):
        score += weights["echo_time"]
        matched.append(f"TE {candidate.echo_time:g} ms")
    if _in_range(series.repetition_time, plane_rules["repetition_time_ms"]):
        score += weights["repetition_time"]
        matched.append(f"TR {series.repetition_time:g} ms")
    fat = rules["fat_sat"]
    fat_sat = (_search(fat["description_patterns"], description)
               or bool(set(series.scan_options) & set(fat["scan_options"]))
               or ("IR" in series.scanning_sequence and series.inversion_time is not None
                   and series.inversion_time <= fat["stir_max_inversion_time_ms"]))
    if fat_sat == plane_rules["fat_sat"]:
        score += weights["fat_sat"]
        matched.append("fat-sat" if fat_sat else "no fat-sat")
    spin = rules["spin_echo"]
    if (set(series.scanning_sequence) & set(spin["scanning_sequence"])
            or _search(spin["sequence_name_patterns"], series.sequence_name.lower())):
        score += weights["spin_echo"]
        matched.append("spin echo")
    candidate.score, candidate.matched = score, matched


def evaluate(series: SeriesHeader, rules: dict) -> Candidate:
    first = series.images[0]
    plane, obliquity = plane_of_normal(np.cross(first.along_row, first.along_col))
    images, echo = choose_echo(split_echoes(series.images), plane, rules)
    candidate = Candidate(series, plane, obliquity, images, echo)

    localizer = rules["localizer"]
    if _search(localizer["description_patterns"], series.description.lower()):
        candidate.soft = Skipped("LOCALIZER", f"{series.label}: a localizer, by its description")
    elif set(series.image_type) & set(localizer["image_type"]):
        candidate.soft = Skipped("LOCALIZER", f"{series.label}: a localizer, by its ImageType")

    undecodable = sorted({im.syntax for im in images if not decodable(im.syntax)})
    try:
        if undecodable:
            name = next(im.name for im in images if im.syntax == undecodable[0])
            raise Skipped("UNSUPPORTED_TRANSFER_SYNTAX", f"{name}: transfer syntax {UID(undecodable[0]).name} "
                        "cannot be decoded with the installed plug-ins (see README, DICOM support)")
        candidate.stack = check_stack(images, min_slices=2)
    except Skipped as skip:
        prefix = "" if skip.code == "UNSUPPORTED_TRANSFER_SYNTAX" else f"{series.label}: "
        candidate.hard = Skipped(skip.code, prefix + skip.message)
        return candidate

    n = len(candidate.stack.images)
    if candidate.soft is None:
        if n < rules["min_slices"]:
            candidate.soft = Skipped("TOO_FEW_SLICES", f"{series.label}: {n} slices, fewer than "
                                   f"{rules['min_slices']}: a localizer or an incomplete series")
        elif min(first.rows, first.cols) < localizer["min_matrix"]:
            candidate.soft = Skipped("LOCALIZER", f"{series.label}: a {first.rows}x{first.cols} matrix, "
                                   f"smaller than {localizer['min_matrix']}: a localizer")
        elif obliquity > OBLIQUE_LIMIT_DEG:
            candidate.soft = Skipped("OBLIQUE", f"{series.label}: slices {obliquity:.0f} degrees off the {plane} "
                                   f"plane, more than the {OBLIQUE_LIMIT_DEG:g} allowed")
    _score(candidate, rules)
    return candidate


def reason_for(chosen: Candidate, rivals: int, by_caller: bool) -> str:
    plane, rules = chosen.plane, series_rules()
    parts = [f"{plane} by its slice orientation ({chosen.obliquity:.0f} degrees oblique)"]
    if by_caller:
        parts.append("chosen by the caller")
    else:
        sequence = rules["planes"][plane]["sequence"]
        parts.append(f"MRNet's {plane} sequence is {sequence}; this series: "
                     + (", ".join(chosen.matched) if chosen.matched else "no sequence hint")
                     + f" (score {chosen.score})")
        parts.append(f"{len(chosen.stack.images)} slices; " + (f"the best of {rivals + 1} usable {plane} series"
                                                               if rivals else f"the only usable {plane} series"))
    return "; ".join(parts)
