"""ONNX Runtime sessions, made one way for the whole toolkit: the `Predictor`, the int8 gate and the
export's parity check all open their models here.

    open_session(path)                          # CPU, ORT's default thread pool
    open_session(path, threads=2, spinning=False, providers=[CUDA, CPU])
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

CUDA = "CUDAExecutionProvider"
CPU = "CPUExecutionProvider"


def physical_cores() -> int:
    import psutil

    return psutil.cpu_count(logical=False) or psutil.cpu_count() or 1


def gpu_present() -> bool:
    """Whether an NVIDIA driver is loaded. onnxruntime-gpu lists the CUDA provider whether or not a
    GPU exists, and logs a loud error when it fails to load one; look for the driver first."""
    return Path("/proc/driver/nvidia/version").exists() or Path("/dev/nvidia0").exists()


def session_options(threads: int | None = None, spinning: bool = True):
    """Full graph optimisation, quiet logging; `threads` intra-op threads (None: ORT's default).

    `spinning=False` stops idle pool threads from spinning: with one pool per session, a spinning
    pool keeps its cores busy after its model is done, against the next model (measured 1.05x
    faster per exam on 2 cores without spinning; benchmarks/inference.py, table 3).
    """
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if threads:
        options.intra_op_num_threads = threads
    if not spinning:
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def open_session(path: str | Path, threads: int | None = None, spinning: bool = True,
                 providers: Sequence[str] = (CPU,)):
    """An InferenceSession on `path` with `session_options(threads, spinning)`."""
    import onnxruntime as ort

    return ort.InferenceSession(str(path), session_options(threads, spinning), providers=list(providers))
