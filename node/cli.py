"""`mrnet-node`: a DICOM node a PACS sends knee MR studies to; it sends back a Structured Report.

    mrnet-node --ae-title MRNET --port 11112 --destination PACS@pacs.local:4242 --work-dir /var/lib/mrnet-node

Runs until interrupted (Ctrl-C or SIGTERM). Logs go to stderr: one line per association refused,
study complete, study refused (with its error code) and result sent; never patient data.
"""

from __future__ import annotations

import logging
import signal
import threading
from pathlib import Path
from typing import Annotated, Optional

import typer

from mrnet.infer import console
from mrnet.infer.errors import InputError
from mrnet.infer.registry import NOT_FOR_CLINICAL_USE

app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)


def _ae_title(value: str, option: str) -> str:
    value = value.strip()
    if not 0 < len(value) <= 16 or "\\" in value or not value.isascii():
        raise InputError("BAD_OPTION", f"{option} takes an AE title of 1 to 16 ASCII characters, not {value!r}")
    return value


@app.command(cls=console.GuardedCommand, no_args_is_help=True,
             help="A DICOM node: receive knee MR studies, send back a Structured Report. " + NOT_FOR_CLINICAL_USE)
def node(
    destination: Annotated[str, typer.Option(help="Where results go: AET@HOST:PORT (the PACS).")],
    work_dir: Annotated[Path, typer.Option(help="Received files and unsent results live here, and only here.")],
    ae_title: Annotated[str, typer.Option(help="This node's AE title.")] = "MRNET",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 11112,
    host: Annotated[str, typer.Option(help="Address to listen on (127.0.0.1: this machine only).")] = "127.0.0.1",
    stable_seconds: Annotated[float, typer.Option(help="A study is complete after this long without a new "
                                                  "instance.")] = 10.0,
    allow_ae: Annotated[Optional[str], typer.Option(help="Comma-separated calling AE titles to accept "
                                                    "(default: any).")] = None,
    keep: Annotated[bool, typer.Option("--keep", help="Keep received files (in WORK_DIR/kept) after "
                                       "processing.")] = False,
    overlays: Annotated[bool, typer.Option("--overlays", help="Also send a Secondary Capture per plane and task "
                                           "(the class activation map on its key slice).")] = False,
    models: Annotated[Optional[Path], typer.Option(help="Model bundle folder (default: the shipped demo "
                                                   "bundle).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    precision: Annotated[str, typer.Option(help="auto, fp32 or int8.")] = "auto",
    retries: Annotated[int, typer.Option(help="Retries of a failed send before the result waits in the outbox.")] = 3,
    retry_interval: Annotated[float, typer.Option(help="Seconds between tries of results in the outbox.")] = 60.0,
    debug: Annotated[bool, typer.Option("--debug", help="Show tracebacks.")] = False,
):
    console.set_debug(debug)
    from .outbox import Destination
    from .service import Node, NodeConfig

    allowed = tuple(_ae_title(a, "--allow-ae") for a in allow_ae.split(",")) if allow_ae else ()
    if not 0 < port < 65536:
        raise InputError("BAD_OPTION", f"--port must be 1 to 65535, not {port}")
    if stable_seconds < 0 or retries < 0 or retry_interval <= 0:
        raise InputError("BAD_OPTION", "--stable-seconds and --retries must be >= 0, --retry-interval > 0")
    if work_dir.exists() and not work_dir.is_dir():
        raise InputError("BAD_OPTION", "--work-dir must be a folder", work_dir)
    config = NodeConfig(ae_title=_ae_title(ae_title, "--ae-title"), port=port, host=host,
                        destination=Destination.parse(destination), work_dir=work_dir,
                        stable_seconds=stable_seconds, allow_ae=allowed, keep=keep, overlays=overlays, models=models,
                        device=device, precision=precision, retries=retries, retry_interval=retry_interval)
    _logging(debug)
    service = Node(config)
    service.start()
    stopping = threading.Event()
    previous = {signum: signal.signal(signum, lambda *_: stopping.set()) for signum in (signal.SIGINT, signal.SIGTERM)}
    try:
        stopping.wait()
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)
        logging.getLogger("mrnet.node").info("stopping; %d result(s) wait in the outbox",
                                             len(service.outbox.waiting()))
        service.stop()


def _logging(debug: bool) -> None:
    """The node's own lines at INFO; libraries' at WARNING (pynetdicom's and highdicom's lower
    levels print dataset contents and UIDs), highdicom's at ERROR."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%Y-%m-%dT%H:%M:%S")
    logging.getLogger("mrnet.node").setLevel(logging.DEBUG if debug else logging.INFO)
    logging.getLogger("pynetdicom").setLevel(logging.WARNING)
    logging.getLogger("highdicom").setLevel(logging.ERROR)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
