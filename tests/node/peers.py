"""Real DICOM peers for the node's tests: dcmtk's tools, the node itself as a process, free
ports. The node listens on 127.0.0.1; every server a test starts is stopped by its own pid."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from helpers import REPO


def dcmtk(tool: str) -> str:
    """dcmtk's own `tool`: pynetdicom installs Python tools of the same names into the venv."""
    for folder in os.environ.get("PATH", "").split(os.pathsep) + ["/usr/bin"]:
        candidate = Path(folder) / tool
        if candidate.is_file() and os.access(candidate, os.X_OK):
            version = subprocess.run([str(candidate), "--version"], capture_output=True, text=True)
            if "dcmtk" in version.stdout + version.stderr:
                return str(candidate)
    pytest.skip(f"dcmtk's {tool} is not installed (apt-get install dcmtk; make system-deps does)")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def stop(process: subprocess.Popen) -> None:
    """Stop a server this test started, by its own pid."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait()


def wait_for(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:g} s waiting for {what}")


@contextmanager
def storescp(folder: Path, ae_title: str = "DEST", port: int | None = None):
    """dcmtk's storescp receiving into `folder`; yields its port. dcmtk 3.6.7's storescp has no
    option to bind one address: it listens on every interface, on a free port, for this test only."""
    port = port or free_port()
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder.parent / f"storescp-{port}.log", "w") as log:
        process = subprocess.Popen([dcmtk("storescp"), "--output-directory", str(folder), "-aet", ae_title, str(port)],
                                   stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: process.poll() is not None or _listening(port), 20, f"storescp on port {port}")
        assert process.poll() is None, "storescp did not start"
        yield port
    finally:
        stop(process)


def _listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


class NodeProcess:
    def __init__(self, process: subprocess.Popen, port: int, log: Path, work: Path):
        self.process, self.port, self.log, self.work = process, port, log, work

    def text(self) -> str:
        return self.log.read_text()

    def received_files(self) -> list[Path]:
        return [p for sub in ("incoming", "processing", "partial") for p in (self.work / sub).rglob("*") if p.is_file()]


@contextmanager
def node(work: Path, destination: str, *options: str, ae_title: str = "MRNET"):
    """`python -m mrnet.node.cli` on a free port, ready when dcmtk's echoscu gets an answer."""
    port = free_port()
    log = work.parent / f"node-{port}.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO / ".pkgroot"),
                                                                    os.environ.get("PYTHONPATH")]))}
    with open(log, "w") as out:
        process = subprocess.Popen([sys.executable, "-m", "mrnet.node.cli", "--ae-title", ae_title, "--port", str(port),
                                    "--destination", destination, "--work-dir", str(work), *options],
                                   stdout=out, stderr=subprocess.STDOUT, env=env)
    running = NodeProcess(process, port, log, work)
    try:
        wait_for(lambda: process.poll() is not None or echo(port, ae_title, calling=_calling(options)), 60,
                 "the node to answer C-ECHO")
        assert process.poll() is None, running.text()
        yield running
    finally:
        stop(process)


def _calling(options) -> str:
    options = list(options)
    return options[options.index("--allow-ae") + 1].split(",")[0] if "--allow-ae" in options else "ECHOSCU"


def echo(port: int, called: str, calling: str = "ECHOSCU") -> bool:
    return subprocess.run([dcmtk("echoscu"), "-aet", calling, "-aec", called, "127.0.0.1", str(port)],
                          capture_output=True, timeout=30).returncode == 0


def storescu(port: int, path: Path, called: str = "MRNET", calling: str = "STORESCU",
             wait: bool = True) -> subprocess.Popen | subprocess.CompletedProcess:
    """dcmtk's storescu sending every file under `path` (+sd: scan the folder, +r: recursively)."""
    command = [dcmtk("storescu"), "-aet", calling, "-aec", called, "+sd", "+r", "127.0.0.1", str(port), str(path)]
    if wait:
        return subprocess.run(command, capture_output=True, text=True, timeout=300)
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
