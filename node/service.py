"""The node as one object: the SCP, a monitor that hands stable studies to one worker, the worker
(the Predictor's sessions opened once, at start-up), and the outbox's sender.

One worker scores one study at a time: the Predictor already uses every core for one exam, and
studies that arrive meanwhile wait in the queue, already stored.
"""

from __future__ import annotations

import importlib
import logging
import queue
import threading
from dataclasses import dataclass, field
from pathlib import Path

from mrnet.infer.predictor import DEMO_NOTICE, Predictor
from mrnet.infer.registry import NOT_FOR_CLINICAL_USE

from . import scp
from .outbox import Destination, Outbox
from .pipeline import process
from .studies import CompleteStudy, StudyStore

log = logging.getLogger("mrnet.node")


@dataclass(frozen=True)
class NodeConfig:
    ae_title: str
    port: int
    destination: Destination
    work_dir: Path
    host: str = "127.0.0.1"
    stable_seconds: float = 10.0
    allow_ae: tuple[str, ...] = ()
    keep: bool = False
    overlays: bool = False
    models: Path | None = None
    device: str = "auto"
    precision: str = "auto"
    retries: int = 3
    retry_interval: float = 60.0
    poll_seconds: float = field(default=0.1, repr=False)


def _load_report_libraries(overlays: bool) -> None:
    """Load highdicom and its tables of the standard now (about 2 s on the first report), not
    while the first study waits for its report."""
    importlib.import_module("mrnet.infer.dicom_results.structured_report")
    if overlays:
        importlib.import_module("mrnet.infer.dicom_results.secondary_capture")
    try:  # highdicom reads these JSON tables once, on first use; the name is private, hence the guard
        from highdicom import _standard_utils as tables  # noqa: PLC0415

        tables.get_sop_class_iod_map(), tables.get_iod_module_map(), tables.get_module_attribute_map()
    except Exception:  # noqa: BLE001, S110 - only a warm-up: without it the first report is slower
        pass


class Node:
    def __init__(self, config: NodeConfig):
        self.config = config
        config.work_dir.mkdir(parents=True, exist_ok=True)
        self.predictor = Predictor(config.models, device=config.device, precision=config.precision)
        _load_report_libraries(config.overlays)
        self.store = StudyStore(config.work_dir, config.stable_seconds)
        self.outbox = Outbox(config.work_dir, config.destination, config.ae_title, retries=config.retries,
                             retry_interval=config.retry_interval)
        self._queue: queue.Queue[CompleteStudy | None] = queue.Queue()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._server = None

    def start(self) -> None:
        c = self.config
        self._server = scp.start(self.store, c.ae_title, c.host, c.port, list(c.allow_ae))
        for target, name in ((self._monitor, "monitor"), (self._work, "worker"), (self.outbox.run, "sender")):
            thread = threading.Thread(target=target, name=f"mrnet-node-{name}", daemon=True)
            thread.start()
            self._threads.append(thread)
        notice = NOT_FOR_CLINICAL_USE + (" " + DEMO_NOTICE if self.predictor.bundle.synthetic else "")
        log.info("%s listening on %s:%d (%s); stable after %g s; results to %s; bundle %s (%s, %s). %s",
                 c.ae_title, c.host, c.port,
                 "calling AE titles " + ",".join(c.allow_ae) if c.allow_ae else "any calling AE title",
                 c.stable_seconds, c.destination, self.predictor.bundle.version, self.predictor.provider,
                 self.predictor.precision, notice)

    def _monitor(self) -> None:
        while not self._stop.wait(self.config.poll_seconds):
            for study in self.store.take_complete():
                log.info("study %s: stable, %d instance(s) received", study.key, study.instances)
                self._queue.put(study)

    def _work(self) -> None:
        kept = self.config.work_dir / "kept" if self.config.keep else None
        while (study := self._queue.get()) is not None:
            try:
                process(study, self.predictor, self.outbox, keep=self.config.keep, kept_folder=kept,
                        overlays=self.config.overlays)
            except Exception as error:  # noqa: BLE001 - one bad study must not stop the node
                log.error("study %s failed: %s [INTERNAL]", study.key, type(error).__name__)
                log.debug("traceback", exc_info=True)

    def stop(self) -> None:
        """Stop accepting, finish the study being scored, stop sending (what waits stays in the outbox)."""
        if self._server is not None:
            self._server.shutdown()
        self._stop.set()
        self._queue.put(None)
        self.outbox.stop()
        for thread in self._threads:
            thread.join(timeout=60)
