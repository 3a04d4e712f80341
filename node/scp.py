"""The Storage SCP: answers C-ECHO, stores MR Image Storage and Enhanced MR Image Storage
instances (in every transfer syntax the reader can decode) into the study store, and refuses
calling AE titles not in `--allow-ae`.

Each association runs in its own pynetdicom thread; the store is thread-safe, so concurrent
associations and interleaved studies need nothing more. pynetdicom's own log is held at WARNING:
its lower levels can print dataset contents.
"""

from __future__ import annotations

import logging
import warnings

from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
)
from pynetdicom import AE, ALL_TRANSFER_SYNTAXES, evt
from pynetdicom.sop_class import EnhancedMRImageStorage, MRImageStorage, Verification

from mrnet.infer.errors import InputError
from mrnet.infer.reading.dicom_headers import decodable

from .studies import StudyStore

log = logging.getLogger("mrnet.node")
logging.getLogger("pynetdicom").setLevel(logging.WARNING)

ACCEPTED_SOP_CLASSES = (MRImageStorage, EnhancedMRImageStorage)
_NATIVE = [ExplicitVRLittleEndian, ImplicitVRLittleEndian, DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian]
# C-STORE statuses (PS3.4 B.2.3)
SUCCESS, OUT_OF_RESOURCES, CANNOT_UNDERSTAND = 0x0000, 0xA700, 0xC000


def transfer_syntaxes() -> list[str]:
    """Uncompressed syntaxes, then every compressed one the installed decoders read."""
    compressed = [ts for ts in ALL_TRANSFER_SYNTAXES if ts not in _NATIVE and decodable(ts)]
    return _NATIVE + compressed


def _on_store(event, store: StudyStore):
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # pydicom's warnings can quote element values
            ds = event.dataset
            study_uid, sop_uid = str(ds.get("StudyInstanceUID", "") or ""), str(ds.get("SOPInstanceUID", "") or "")
    except Exception:  # noqa: BLE001 - a dataset that does not parse is the peer's problem
        log.warning("instance refused: the dataset cannot be parsed [CORRUPT_FILE]")
        return CANNOT_UNDERSTAND
    if not study_uid or not sop_uid:
        log.warning("instance refused: no Study or SOP Instance UID [NO_STUDY_UID]")
        return CANNOT_UNDERSTAND
    partial = store.partial_path()
    try:
        partial.write_bytes(event.encoded_dataset(include_meta=True))
        store.add(partial, study_uid, sop_uid)
    except OSError as error:
        partial.unlink(missing_ok=True)
        log.error("instance not stored: %s [WORK_DIR_FULL]", type(error).__name__)
        return OUT_OF_RESOURCES
    return SUCCESS


def _on_rejected(event):
    calling = event.assoc.requestor.ae_title
    log.warning("association from AE %r refused: not in --allow-ae [AE_NOT_ALLOWED]", calling)


def start(store: StudyStore, ae_title: str, host: str, port: int, allow_ae: list[str]):
    """Start the SCP in background threads; returns the server (call `.shutdown()` to stop)."""
    ae = AE(ae_title=ae_title)
    ae.maximum_associations = 16
    ae.network_timeout = ae.acse_timeout = ae.dimse_timeout = 60
    ae.require_calling_aet = list(allow_ae)
    ae.add_supported_context(Verification)
    syntaxes = transfer_syntaxes()
    for sop_class in ACCEPTED_SOP_CLASSES:
        ae.add_supported_context(sop_class, syntaxes)
    handlers = [(evt.EVT_C_STORE, _on_store, [store]), (evt.EVT_C_ECHO, lambda event: SUCCESS),
                (evt.EVT_REJECTED, _on_rejected)]
    try:
        return ae.start_server((host, port), block=False, evt_handlers=handlers)
    except OSError as error:
        raise InputError("PORT_IN_USE", f"cannot listen on {host}:{port} ({error.strerror or error})") from None
