"""End to end with a real PACS: Orthanc (the Debian package) with the node as a DICOM modality
and itself as the node's destination. A study uploaded over Orthanc's REST API is sent to the
node by Orthanc; the node's SR must come back and be filed under the same study."""

from __future__ import annotations

import io
import json
import shutil
import subprocess
import urllib.request

import pydicom
import pytest

from mrnet.infer.synthetic.scanner_files import FAKE_PATIENT
from peers import free_port, node, stop, wait_for

pytestmark = pytest.mark.slow


def orthanc_config(folder, http_port: int, dicom_port: int, node_port: int) -> dict:
    """Orthanc on free ports with its own storage; only the node (AE MRNET from 127.0.0.1) may
    store, and nothing but loopback clients may use the REST API."""
    return {
        "Name": "mrnet-test", "StorageDirectory": str(folder / "storage"), "IndexDirectory": str(folder / "storage"),
        "Plugins": [], "LuaScripts": [],
        "HttpPort": http_port, "RemoteAccessAllowed": False, "AuthenticationEnabled": False,
        "OrthancExplorerEnabled": False, "WebDavEnabled": False,
        "DicomAet": "ORTHANC", "DicomPort": dicom_port,
        "DicomModalities": {"mrnet": ["MRNET", "127.0.0.1", node_port]},
        "DicomAlwaysAllowStore": False, "DicomAlwaysAllowEcho": False, "DicomCheckModalityHost": True,
        "SaveJobs": False,
    }


class Orthanc:
    def __init__(self, http_port: int):
        self.base = f"http://127.0.0.1:{http_port}"

    def call(self, method: str, path: str, body: bytes | str | None = None):
        data = body.encode() if isinstance(body, str) else body
        request = urllib.request.Request(self.base + path, data=data, method=method)
        with urllib.request.urlopen(request, timeout=120) as response:
            text = response.read()
        return json.loads(text) if response.headers.get("Content-Type", "").startswith("application/json") else text

    def alive(self) -> bool:
        try:
            return bool(self.call("GET", "/system"))
        except OSError:
            return False


def test_orthanc_sends_a_study_to_the_node_and_files_the_report_under_it(phantom_study, tmp_path):
    executable = shutil.which("Orthanc")
    if executable is None:
        pytest.skip("Orthanc is not installed (apt-get install orthanc; make system-deps does)")
    http_port, dicom_port = free_port(), free_port()
    with node(tmp_path / "work", f"ORTHANC@127.0.0.1:{dicom_port}", "--stable-seconds", "1",
              "--allow-ae", "ORTHANC") as running:
        config = tmp_path / "orthanc.json"
        config.write_text(json.dumps(orthanc_config(tmp_path, http_port, dicom_port, running.port)))
        with open(tmp_path / "orthanc.log", "w") as log:
            process = subprocess.Popen([executable, str(config)], stdout=log, stderr=subprocess.STDOUT)
        orthanc = Orthanc(http_port)
        try:
            wait_for(lambda: process.poll() is not None or orthanc.alive(), 60, "Orthanc's REST API")
            assert process.poll() is None, (tmp_path / "orthanc.log").read_text()
            for path in sorted(p for p in phantom_study.rglob("*") if p.is_file()):
                orthanc.call("POST", "/instances", path.read_bytes())
            [study] = orthanc.call("GET", "/studies")
            images = len(orthanc.call("GET", f"/studies/{study}/instances"))

            orthanc.call("POST", "/modalities/mrnet/store", study)  # Orthanc's C-STORE to the node

            def report_series():
                for series in orthanc.call("GET", f"/studies/{study}/series"):
                    if series["MainDicomTags"].get("Modality") == "SR":
                        return series
                return None

            series = wait_for(report_series, 120, "the SR in Orthanc", interval=0.5)
            assert "not for clinical use" in series["MainDicomTags"]["SeriesDescription"]
            [instance] = series["Instances"]
            report = pydicom.dcmread(io.BytesIO(orthanc.call("GET", f"/instances/{instance}/file")))
            assert report.PatientID == FAKE_PATIENT["PatientID"]
            assert len(orthanc.call("GET", "/studies")) == 1  # filed under the same study, no new one
            assert len(orthanc.call("GET", f"/studies/{study}/instances")) == images + 1
        finally:
            stop(process)
    assert f"{images} instance(s)" in running.text()
