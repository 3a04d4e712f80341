"""`mrnet-app`: serve the web demo on this machine (127.0.0.1 unless told otherwise).

The model bundle is verified and its ONNX Runtime sessions opened once, before the server starts;
every request shares them. The example exam is written to a temporary folder that lives as long
as the server.
"""

from __future__ import annotations

import logging
import tempfile
from pathlib import Path
from typing import Annotated, Optional

import typer

from mrnet.infer import console
from mrnet.infer.errors import InputError
from mrnet.infer.registry import NOT_FOR_CLINICAL_USE

app = typer.Typer(add_completion=False, pretty_exceptions_show_locals=False)


@app.command(cls=console.GuardedCommand,
             help="Serve the knee MRI web demo (upload an exam, see the probabilities and where the models "
                  "looked). " + NOT_FOR_CLINICAL_USE)
def serve(
    models: Annotated[Optional[Path], typer.Option(help="Model bundle folder (default: the shipped demo one).")] = None,
    host: Annotated[str, typer.Option(help="Address to bind; 0.0.0.0 exposes the demo to the network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 7860,
    max_upload_mb: Annotated[int, typer.Option(help="Largest file accepted per upload, in MB.")] = 1024,
    concurrency: Annotated[int, typer.Option(help="Exams scored at once.")] = 2,
    queue_size: Annotated[int, typer.Option(help="Requests that may wait in the queue.")] = 32,
    debug: Annotated[bool, typer.Option("--debug", help="Log tracebacks (they may name uploaded files).")] = False,
):
    console.set_debug(debug)
    for name, value in (("--max-upload-mb", max_upload_mb), ("--concurrency", concurrency),
                        ("--queue-size", queue_size)):
        if value < 1:
            raise InputError("BAD_OPTION", f"{name} must be at least 1, not {value}")
    # Only this app's own lines (codes, counts, timings) at INFO; libraries that log request URLs,
    # which carry uploaded file names, stay at WARNING.
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("mrnet.app").setLevel(logging.DEBUG if debug else logging.INFO)

    from mrnet.infer.predictor import Predictor

    predictor = Predictor(models)  # a bad bundle stops here, before gradio is even imported

    from .examples import write_examples
    from .ui import Limits, build_demo, launch_options

    limits = Limits(max_upload_mb=max_upload_mb, concurrency=concurrency, queue_size=queue_size)
    with tempfile.TemporaryDirectory(prefix="mrnet-app-examples-") as folder:
        demo = build_demo(predictor, write_examples(folder), limits, debug=debug)
        console.stderr.print(f"mrnet-app: bundle {predictor.bundle.version} on {predictor.provider}; "
                             f"serving http://{host}:{port} (Ctrl+C to stop). {NOT_FOR_CLINICAL_USE}",
                             markup=False)
        demo.launch(**launch_options(limits, host, port))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
