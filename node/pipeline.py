"""One complete study: read it, score it, put its report in the outbox, clear its files.

A study the reader refuses (no usable knee series, damaged files, ...) gets one log line with the
error code and no report: there is no result to file. Log lines name the study by its key and
count files; they never carry a patient attribute, a UID or a file's content.
"""

from __future__ import annotations

import logging
import shutil
import time
from pathlib import Path

from mrnet.infer.dicom_results.results import dicom_results
from mrnet.infer.errors import MRNetError
from mrnet.infer.predictor import Predictor
from mrnet.infer.reading import read_exam

from .outbox import Outbox
from .studies import CompleteStudy

log = logging.getLogger("mrnet.node")


def process(study: CompleteStudy, predictor: Predictor, outbox: Outbox, keep: bool = False,
            kept_folder: Path | None = None, overlays: bool = False) -> Path | None:
    """Score one study and queue its SR (and Secondary Captures); returns the outbox entry, or
    None when refused."""
    started = time.perf_counter()
    try:
        try:
            exam = read_exam(study.folder)
            prediction = predictor.predict(exam)
            results = dicom_results(prediction, exam, study.folder, overlays=overlays)
        except MRNetError as error:
            log.warning("study %s refused: %d instance(s), no report [%s]", study.key, study.instances, error.code)
            return None
        entry = outbox.put(study.folder.name, results, last_received=study.last_received)
        log.info("study %s: %d instance(s), planes %s, report ready in %.2f s", study.key, study.instances,
                 "+".join(prediction.planes), time.perf_counter() - started)
        return entry
    finally:
        _clear(study, keep, kept_folder)  # whatever happened; after the result is on its way


def _clear(study: CompleteStudy, keep: bool, kept_folder: Path | None) -> None:
    """Received files live only in the work folder, and only until their study is processed."""
    if keep and kept_folder is not None:
        kept_folder.mkdir(parents=True, exist_ok=True)
        study.folder.rename(kept_folder / study.folder.name)
    else:
        shutil.rmtree(study.folder, ignore_errors=True)
