"""Read a DICOM study into MRNet volumes: any number of series, files in any order, any names.

1. Read every file's header; keep images (not DICOMDIR, reports or presentation states).
2. Group images by SeriesInstanceUID; split a multi-echo series by echo and choose one echo.
3. Check each stack: one orientation, one matrix, no duplicate positions, even slice spacing.
4. Choose one series per plane by the rules in `series_rules.json` (`series_selection.py`), or take
   the caller's choice.
5. Decode and rescale the chosen series' pixels; reorient and resample them (`geometry.py`).

Slices are ordered by their position projected on the slice normal, never by InstanceNumber or
file name. No patient attribute is ever read: messages name files and series only.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from ..registry import MAX_SLICES, MIN_SLICES, PLANES
from .archive import Source
from .dicom_headers import SeriesHeader, read_headers
from .dicom_stack import SliceStack, load_pixels
from .geometry import Stack, to_mrnet
from .series_selection import Candidate, evaluate, reason_for, series_rules
from .types import Exam, ExamError, ImageRef, Problem, SeriesInfo, Skipped, nothing_usable


def _folder(names: list[str]) -> str:
    """The folder (relative to the exam) that holds a series' files; "." for the exam's own."""
    parents = {os.path.dirname(n) for n in names}
    return (os.path.commonpath(list(parents)) if all(parents) else "") or "."


def _info(candidate: Candidate, stack: SliceStack, loaded: Stack, reason: str) -> SeriesInfo:
    first = stack.images[0]
    return SeriesInfo(
        plane=candidate.plane, source=_folder(sorted({im.source.name for im in stack.images})),
        description=candidate.series.description, n_slices=len(stack.images), reason=reason,
        series_uid=candidate.series.uid, series_number=candidate.series.number,
        matrix=(first.rows, first.cols),
        spacing_mm=tuple(round(float(s), 4) for s in (first.pixel_mm[0], first.pixel_mm[1], stack.spacing)),
        orientation=loaded.orientation, obliquity_deg=round(candidate.obliquity, 2), echo=candidate.echo,
        echo_time_ms=candidate.echo_time, repetition_time_ms=candidate.series.repetition_time,
        study_uid=candidate.series.study_uid or None,
        images=tuple(ImageRef(im.sop_class, im.sop_instance, None if im.frame is None else im.frame + 1)
                     for im in stack.images))


def _series_problem(candidate: Candidate, skip: Skipped | None = None) -> Problem:
    skip = skip or candidate.problem
    return Problem(skip.code, candidate.series.uid or None, skip.message)


def read_dicom(sources: list[Source], series: Mapping[str, str] | None = None,
               skipped: list[Problem] | None = None) -> Exam:
    """Read DICOM files (one study, any number of series) into an `Exam`."""
    rules = series_rules()
    skipped = list(skipped or [])
    file_problems: list[Problem] = []
    found: dict[str, SeriesHeader] = {}
    for source in sources:
        try:
            attributes, images = read_headers(source)
        except Skipped as skip:
            file_problems.append(Problem(skip.code, source.name, skip.message))
            continue
        found.setdefault(attributes.uid, attributes).images.extend(images)
    warnings_out = [f"{p.source}: {p.message}; skipped [{p.code}]" for p in file_problems if p.code == "CORRUPT_FILE"]

    if not found:
        # Every file damaged, or every image without geometry, says more than "no images".
        codes = {p.code for p in file_problems}
        code = codes.pop() if codes in ({"CORRUPT_FILE"}, {"NO_GEOMETRY"}) else "NO_IMAGES"
        raise ExamError(code, f"no usable DICOM image among {len(sources)} DICOM file(s)",
                        problems=file_problems or [Problem("NO_IMAGES", None, "no DICOM image")])

    candidates = [evaluate(s, rules) for s in sorted(found.values(), key=lambda s: (s.number or 0, s.uid))]
    chosen_by_caller = dict(series or {})
    for plane, uid in chosen_by_caller.items():
        match = next((c for c in candidates if c.series.uid == uid), None)
        if match is None:
            raise ExamError("SERIES_NOT_FOUND", f"no series {uid} in this exam (series found: "
                            f"{', '.join(c.series.uid for c in candidates)})", uid)
        if match.plane != plane:
            raise ExamError("SERIES_PLANE_MISMATCH", f"{match.series.label} is {match.plane}, not {plane}", uid)
        if match.hard is not None:
            raise ExamError(match.hard.code, match.hard.message, uid, problems=[_series_problem(match, match.hard)])

    volumes, infos, left_out = {}, {}, []
    for plane in PLANES:
        if plane in chosen_by_caller:
            ranked = [c for c in candidates if c.series.uid == chosen_by_caller[plane]]
        else:
            ranked = sorted((c for c in candidates if c.plane == plane and c.problem is None),
                            key=Candidate.rank)
        for index, candidate in enumerate(ranked):
            try:
                loaded, stack, notes = load_pixels(candidate.stack, candidate.series.label)
            except Skipped as skip:
                if plane in chosen_by_caller:
                    raise ExamError(skip.code, skip.message, candidate.series.uid,
                                    problems=[_series_problem(candidate, skip)]) from None
                candidate.hard = Skipped(skip.code, skip.message)
                continue
            by_caller = plane in chosen_by_caller
            volumes[plane] = to_mrnet(loaded, plane)
            infos[plane] = _info(candidate, stack, loaded,
                                 reason_for(candidate, len(ranked) - 1 - index, by_caller))
            warnings_out += notes
            if stack.duplicates:
                warnings_out.append(f"{plane}: {stack.duplicates} image(s) at duplicate slice positions "
                                    f"left out of {candidate.series.label}")
            if not MIN_SLICES <= len(stack.images) <= MAX_SLICES:
                warnings_out.append(f"{plane}: {len(stack.images)} slices, where MRNet volumes have "
                                    f"{MIN_SLICES} to {MAX_SLICES}")
            if candidate.soft is not None:
                warnings_out.append(f"{plane}: {candidate.soft.message}; used because the caller chose it")
            left_out += [c for c in ranked[index + 1:] if c is not candidate]
            break

    chosen_uids = {info.series_uid for info in infos.values()}
    series_problems = []
    for candidate in candidates:
        if candidate.series.uid in chosen_uids:
            continue
        if candidate.problem is not None:
            series_problems.append(_series_problem(candidate))
        elif candidate in left_out:
            winner = infos[candidate.plane]
            series_problems.append(Problem(
                "NOT_CHOSEN", candidate.series.uid or None,
                f"{candidate.series.label}: {candidate.plane}, {len(candidate.stack.images)} slices, score "
                f"{candidate.score}; series {winner.series_number} '{winner.description}' was chosen"))

    if not volumes:
        raise nothing_usable(series_problems, f"none of the {len(candidates)} series is usable",
                             shown=file_problems + series_problems)
    return Exam("dicom", volumes, infos, skipped=skipped + file_problems + series_problems, warnings=warnings_out)
