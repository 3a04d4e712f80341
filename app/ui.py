"""The page: `build_demo(predictor)` lays out the Gradio Blocks and wires them to `handlers`.

    banner (not for clinical use; demo weights when the bundle is synthetic)
    upload (files, a zip or a folder) + Predict + examples | fused probabilities, findings, planes
    which finding's evidence to show, overlay on/off
    one slice viewer per plane: the slice with its CAM, a slider (opens at the strongest evidence)
    the model bundle's version and provenance; the full prediction as JSON

The Predict button is also the API endpoint `/predict`: files in; the fused probabilities, the
findings table, the planes table and the prediction's JSON out. The slice viewer's data (volumes,
CAMs) stay in the browser session's state, in memory only.
"""

from __future__ import annotations

import html
import logging
import os
import socket
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import gradio as gr
from gradio.utils import get_upload_folder

from mrnet.infer.errors import MRNetError
from mrnet.infer.predictor import Predictor
from mrnet.infer.registry import NOT_FOR_CLINICAL_USE, PLANES, TASK_TITLES, TASKS

from . import handlers
from .examples import Example
from .uploads import UploadJanitor

log = logging.getLogger("mrnet.app")

BANNER_STYLE = ("background:#b91c1c;color:#fff;padding:10px 16px;border-radius:6px;"
                "font-weight:600;font-size:1.05rem;text-align:center")
UPLOAD_HELP = ("DICOM files (any names, with or without an extension), a zip of them, NIfTI files (one per "
               "plane) or MRNet's axial.npy, coronal.npy, sagittal.npy. The server deletes them {grace:g} s "
               "after reading them, or when you close this page.")
DEFAULT_TASK = TASKS[0]


def _paths(payload: list[dict] | dict | None) -> list[str]:
    """The server paths of uploaded files, from the files' data as Gradio checked them.

    Upload events here run with preprocess=False: gradio 6.31's File.preprocess (type "filepath")
    opens an empty NamedTemporaryFile in the upload folder for every file and never deletes it, so a
    200-file DICOM exam would leave 200 behind per request. Gradio still checks, before any handler
    runs, that every path lies in its upload folder.
    """
    if payload is None:
        return []
    return [f["path"] for f in (payload if isinstance(payload, list) else [payload])]


@dataclass(frozen=True)
class Limits:
    """What one server accepts and keeps. Files over `max_upload_mb` are refused; `concurrency` exams
    are scored at once and `queue_size` more may wait; an upload is deleted `upload_grace_s` after
    the last session that sent it has had it read (see `uploads`); a session's slice-viewer data live
    `result_ttl_s` in memory; what else Gradio writes (uploads never sent for prediction, rendered
    slices) is swept every `sweep_s[0]` s once older than `sweep_s[1]` s."""

    max_upload_mb: int = 1024
    concurrency: int = 2
    queue_size: int = 32
    upload_grace_s: float = 10.0
    result_ttl_s: int = 900
    sweep_s: tuple[int, int] = (60, 600)
    sessions: int = 200


def launch_options(limits: Limits = Limits(), host: str = "127.0.0.1", port: int | None = None) -> dict:
    """Keyword arguments for `demo.launch`: the upload limit and privacy settings of this app."""
    return {"server_name": host, "server_port": port, "max_file_size": f"{limits.max_upload_mb}mb",
            "state_session_capacity": limits.sessions,
            "show_error": False,  # a bug's message stays on the server; typed errors are shown anyway
            "run_history": False,  # no copies of inputs or results in the browser's storage
            "enable_monitoring": False, "footer_links": ["api"], "ssr_mode": False, "quiet": True}


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as probe:
        probe.bind((host, 0))
        return probe.getsockname()[1]


@contextmanager
def serving(predictor: Predictor, upload_folder: str | Path, limits: Limits = Limits(),
            examples: list[Example] | tuple = (), host: str = "127.0.0.1", port: int | None = None):
    """The demo served from this process in the background (tests, benchmarks, the screenshot),
    on `port` or a free one, with Gradio's upload folder at `upload_folder`; closed on exit, and
    GRADIO_TEMP_DIR as it was before."""
    previous = os.environ.get("GRADIO_TEMP_DIR")
    os.environ["GRADIO_TEMP_DIR"] = str(upload_folder)  # read when the page is built
    demo = None
    try:
        demo = build_demo(predictor, examples, limits)
        demo.launch(prevent_thread_lock=True, **launch_options(limits, host, port or free_port(host)))
        yield demo
    finally:
        if demo is not None:
            demo.close()
        if previous is None:
            os.environ.pop("GRADIO_TEMP_DIR", None)
        else:
            os.environ["GRADIO_TEMP_DIR"] = previous


def _error(lines: list[str]) -> gr.Error:
    # gr.Error renders HTML: escape the reader's words, one problem per line.
    return gr.Error("<br>".join(html.escape(line, quote=False) for line in lines), title="Cannot read this exam",
                    duration=None, print_exception=False)


def build_demo(predictor: Predictor, examples: list[Example] | tuple = (), limits: Limits = Limits(),
               debug: bool = False) -> gr.Blocks:
    """The whole page around one shared `Predictor` (its sessions are opened once, before this)."""
    upload_root = Path(get_upload_folder())
    janitor = UploadJanitor(upload_root, limits.upload_grace_s)

    def claim(files: list[dict] | None, request: gr.Request) -> None:
        """A session's uploads are in use from the moment they arrive (browser) or the request that
        carries them joins the queue (API, as the validator), so no other session's clean-up deletes them."""
        janitor.claim(request.session_hash, _paths(files))

    def take_folder(files: list[dict] | None, request: gr.Request) -> list[str]:
        claim(files, request)
        return _paths(files)

    def predict_upload(files: list[dict] | None, request: gr.Request):
        """Fused probabilities of an abnormality, an ACL tear and a meniscal tear for one knee exam.

        Parameters:
            files: the exam: DICOM files (any names), a zip, NIfTI files or MRNet .npy files
        Returns:
            fused probability per finding (label: finding and decision), the findings table, the
            planes table (series used, per-plane probabilities), and the whole prediction as JSON
        """
        return predict(_paths(files), request)

    def run_example(example: Example):
        paths = [str(f) for f in example.files]  # outside the upload folder: never deleted

        def run(request: gr.Request):
            return predict(paths, request)
        return run

    def forget_session(request: gr.Request) -> None:
        janitor.release(request.session_hash)  # the tab was closed: its uploads are not needed

    def predict(paths: list[str], request: gr.Request):
        started = time.perf_counter()
        try:
            out = handlers.predict_files(paths, predictor)
        except MRNetError as error:
            log.info("predict refused: code=%s files=%d", error.code, len(paths))
            raise _error(handlers.error_lines(error, hide_folders=[upload_root])) from None
        except Exception as error:  # noqa: BLE001 - no traceback reaches a user or the API
            if debug:
                log.exception("predict failed")
            else:
                log.error("predict failed: %s, files=%d (run with --debug for details)",
                          type(error).__name__, len(paths))
            raise gr.Error("The server could not score this exam (internal error); it has been logged.",
                           title="Internal error", print_exception=False) from None
        finally:
            janitor.release(request.session_hash, paths)  # read or refused, it has served its purpose
        for warning in out.warnings[:3]:
            gr.Warning(warning)
        log.info("predict ok: files=%d planes=%s read=%.2fs models=%.2fs total=%.2fs", len(paths),
                 "+".join(out.viewer.planes), out.report["timings_s"]["read"],
                 out.report["timings_s"]["models_total"], time.perf_counter() - started)
        return out.probabilities, out.findings, out.planes, out.report, out.viewer

    def open_viewer(viewer: handlers.Viewer | None, task: str, overlay: bool):
        """Every plane's viewer at the slice with the strongest evidence for `task`."""
        images, sliders = [], []
        for plane in PLANES:
            if viewer is None or plane not in viewer.planes:
                label = plane if viewer is None else f"{plane}: {handlers.NOT_IN_EXAM}"
                images.append(gr.update(value=None, label=label))
                sliders.append(gr.update(visible=False))
                continue
            index = viewer.strongest_slice(plane, task)
            images.append(gr.update(value=viewer.frame(plane, task, index, overlay),
                                    label=f"{plane}: strongest {TASK_TITLES[task]} evidence at slice {index + 1}"))
            # A slider needs two ends; a single-slice volume has nothing to slide through.
            sliders.append(gr.update(value=index + 1, minimum=1, maximum=max(viewer.slices(plane), 2),
                                     visible=viewer.slices(plane) > 1, interactive=True))
        return *images, *sliders

    def show_slice(plane: str):
        def show(viewer: handlers.Viewer | None, number: float, task: str, overlay: bool):
            if viewer is None or plane not in viewer.planes:
                return gr.skip()
            index = int(number) - 1
            return gr.update(value=viewer.frame(plane, task, index, overlay),
                             label=f"{plane}: slice {index + 1} of {viewer.slices(plane)}")
        return show

    with gr.Blocks(title="MRNet knee MRI demo: not for clinical use", analytics_enabled=False,
                   delete_cache=limits.sweep_s) as demo:
        gr.HTML(f'<div id="clinical-banner" role="alert" style="{BANNER_STYLE}">'
                f"{html.escape(handlers.banner_text(predictor))}</div>")
        gr.Markdown("# MRNet knee MRI\nUpload a knee MRI exam to see the probability of an abnormality, an ACL "
                    "tear and a meniscal tear, fused over the planes the exam has, and where the models looked. "
                    f"{NOT_FOR_CLINICAL_USE}")
        viewer_state = gr.State(None, time_to_live=limits.result_ttl_s)
        with gr.Row():
            with gr.Column(scale=2):
                files = gr.File(label="Knee exam", file_count="multiple", type="filepath", elem_id="exam-files")
                gr.Markdown(UPLOAD_HELP.format(grace=limits.upload_grace_s))
                with gr.Row():
                    folder = gr.UploadButton("Upload a folder", file_count="directory", size="md")
                    predict_button = gr.Button("Predict", variant="primary", elem_id="predict")
                # Buttons rather than gr.Examples: gr.Examples copies the files into Gradio's cache, where
                # the delete_cache sweep would remove them from under a long-running server.
                example_buttons = []
                if examples:
                    gr.Markdown("**Examples** (phantom knees made at start-up; click to run)")
                    for example in examples:
                        example_buttons.append((gr.Button(example.label, size="sm"), example))
            with gr.Column(scale=3):
                probabilities = gr.Label(label="Fused probability (decision at the bundle's threshold)",
                                         num_top_classes=len(TASKS), show_heading=False, elem_id="probabilities")
                findings = gr.Dataframe(headers=handlers.FINDINGS_HEADERS, label="Findings", interactive=False)
                planes = gr.Dataframe(headers=handlers.PLANES_HEADERS, label=handlers.planes_label(predictor),
                                      interactive=False)
        with gr.Row():
            task = gr.Radio([(TASK_TITLES[t], t) for t in TASKS], value=DEFAULT_TASK,
                            label="Show where the model looked for", scale=3)
            overlay = gr.Checkbox(value=True, label="Heat map (class activation map) overlay", scale=1)
        images, sliders = [], []
        with gr.Row():
            for plane in PLANES:
                with gr.Column(min_width=220):
                    images.append(gr.Image(label=plane, type="numpy", format="png", interactive=False,
                                           height=300, buttons=["fullscreen"]))
                    sliders.append(gr.Slider(1, 2, value=1, step=1, label=f"{plane} slice", visible=False))
        gr.Markdown(handlers.bundle_markdown(predictor), elem_id="bundle")
        with gr.Accordion("Full prediction (JSON)", open=False):
            report = gr.JSON(label="prediction")

        results = [probabilities, findings, planes, report, viewer_state]
        viewer_parts = [*images, *sliders]

        def after_prediction(event):
            # The upload box is emptied either way: its files are about to be deleted from the server.
            # After a failure the viewers close: no slices of an earlier exam stay next to the error.
            event.success(open_viewer, [viewer_state, task, overlay], viewer_parts, api_visibility="private",
                          queue=False)
            event.success(lambda: None, None, files, api_visibility="private", queue=False)
            event.failure(lambda: (None, None, *open_viewer(None, DEFAULT_TASK, False)), None,
                          [files, viewer_state, *viewer_parts], api_visibility="private", queue=False)

        after_prediction(predict_button.click(predict_upload, [files], results, api_name="predict", validator=claim,
                                       preprocess=False, concurrency_limit=limits.concurrency,
                                       concurrency_id="predict"))
        for button, example in example_buttons:
            after_prediction(button.click(run_example(example), None, results, api_visibility="private",
                                   concurrency_limit=limits.concurrency, concurrency_id="predict"))
        files.upload(claim, files, None, preprocess=False, api_visibility="private", queue=False)
        folder.upload(take_folder, folder, files, preprocess=False, api_visibility="private", queue=False)
        demo.unload(forget_session)
        task.change(open_viewer, [viewer_state, task, overlay], viewer_parts, api_visibility="private", queue=False)
        for plane, image, slider in zip(PLANES, images, sliders):
            slider.input(show_slice(plane), [viewer_state, slider, task, overlay], image, api_visibility="private",
                         queue=False, trigger_mode="always_last", show_progress="hidden")
            overlay.change(show_slice(plane), [viewer_state, slider, task, overlay], image,
                           api_visibility="private", queue=False, show_progress="hidden")

    demo.queue(default_concurrency_limit=limits.concurrency, max_size=limits.queue_size)
    return demo
