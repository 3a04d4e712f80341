"""Results waiting to be sent, kept as files in the work folder until the destination has them.

Each result is a folder in `outbox/` (the SR, and the Secondary Capture images where made) sent
in one association. A failed send is retried `retries` times with a growing pause; a result that
still fails stays in the outbox and is tried again every `retry_interval` seconds, and after a
restart. Sent results are deleted: the PACS has them.
"""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pydicom

from mrnet.infer.errors import InputError

log = logging.getLogger("mrnet.node")
_DESTINATION = re.compile(r"^(?P<aet>[^@\\]{1,16})@(?P<host>[^:@\s]+):(?P<port>\d{1,5})$")


@dataclass(frozen=True)
class Destination:
    ae_title: str
    host: str
    port: int

    @classmethod
    def parse(cls, text: str) -> Destination:
        match = _DESTINATION.match(text.strip())
        if match is None or not 0 < int(match["port"]) < 65536:
            raise InputError("BAD_OPTION", f"--destination takes AET@HOST:PORT (an AE title of at most 16 "
                             f"characters), not {text!r}")
        return cls(match["aet"].strip(), match["host"], int(match["port"]))

    def __str__(self) -> str:
        return f"{self.ae_title}@{self.host}:{self.port}"


class SendFailed(Exception):
    """One try at sending a result did not store every file."""


def send(datasets: list, destination: Destination, calling_ae: str, timeout: float = 30) -> None:
    """C-STORE `datasets` to the destination in one association; raises `SendFailed`."""
    from pynetdicom import AE  # noqa: PLC0415 - the node's own dependency, loaded with the node

    ae = AE(ae_title=calling_ae)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = timeout
    for sop_class in sorted({str(ds.SOPClassUID) for ds in datasets}):
        ae.add_requested_context(sop_class, [pydicom.uid.ExplicitVRLittleEndian, pydicom.uid.ImplicitVRLittleEndian])
    assoc = ae.associate(destination.host, destination.port, ae_title=destination.ae_title)
    if not assoc.is_established:
        raise SendFailed("association refused or destination unreachable")
    try:
        for ds in datasets:
            status = assoc.send_c_store(ds)
            code = getattr(status, "Status", None)
            if code is None or code not in (0x0000, 0xB000, 0xB007, 0xB006):  # success, or stored with a warning
                raise SendFailed(f"C-STORE status {'none' if code is None else f'0x{code:04X}'}")
    finally:
        assoc.release()


class Outbox:
    def __init__(self, work_dir: Path, destination: Destination, calling_ae: str, retries: int = 3,
                 retry_interval: float = 60.0, first_pause: float = 1.0):
        self.folder = work_dir / "outbox"
        self.folder.mkdir(parents=True, exist_ok=True)
        self.destination, self.calling_ae = destination, calling_ae
        self.retries, self.retry_interval, self.first_pause = retries, retry_interval, first_pause
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._received: dict[str, float] = {}  # result -> wall time of its study's last instance
        self._in_memory: dict[str, list] = {}  # result -> its datasets, until first sent (saves a re-read)

    def put(self, name: str, datasets: list, last_received: float | None = None) -> Path:
        """Store a result (SR first) atomically; the sender picks it up at once."""
        staging = self.folder / f".{name}.partial"
        staging.mkdir(parents=True, exist_ok=True)
        for k, ds in enumerate(datasets):
            ds.save_as(staging / f"{k:02d}.dcm", enforce_file_format=True)
        final = self.folder / name
        os.replace(staging, final)
        if last_received is not None:
            self._received[name] = last_received
        self._in_memory[name] = list(datasets)
        self._wake.set()
        return final

    def waiting(self) -> list[Path]:
        return sorted((p for p in self.folder.iterdir() if p.is_dir() and not p.name.startswith(".")),
                      key=lambda p: p.stat().st_mtime)

    def _send_one(self, result: Path) -> bool:
        files = sorted(result.glob("*.dcm"))
        datasets = self._in_memory.pop(result.name, None) or [pydicom.dcmread(f) for f in files]
        pause = self.first_pause
        for attempt in range(1, self.retries + 2):  # the first try and `retries` more
            try:
                send(datasets, self.destination, self.calling_ae)
            except Exception as error:  # noqa: BLE001 - any failure means: try again later
                reason = str(error) if isinstance(error, SendFailed) else type(error).__name__
                log.warning("result %s: send to %s failed (try %d of %d: %s) [SEND_FAILED]", result.name,
                            self.destination, attempt, self.retries + 1, reason)
                if attempt <= self.retries and self._stop.wait(pause):
                    return False
                pause *= 2
                continue
            for file in files:
                file.unlink()
            result.rmdir()
            received = self._received.pop(result.name, None)
            latency = f"; {time.time() - received:.2f} s after the study's last instance" if received else ""
            log.info("result %s: %d object(s) stored at %s%s", result.name, len(files), self.destination, latency)
            return True
        log.warning("result %s: kept in the outbox, next try in %.0f s", result.name, self.retry_interval)
        return False

    def run(self) -> None:
        """The sender thread: send what waits, then sleep until a new result or the retry interval."""
        while not self._stop.is_set():
            self._wake.clear()
            for result in self.waiting():
                if self._stop.is_set() or not self._send_one(result):
                    break  # the destination is failing: wait for the interval before the rest
            self._wake.wait(self.retry_interval)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
