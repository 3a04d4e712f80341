"""`mrnet-app`: its options, and one-line errors with the project's exit statuses."""

from __future__ import annotations

import subprocess
import sys

from helpers import REPO


def _mrnet_app(*args: str) -> subprocess.CompletedProcess:
    exe = REPO / ".venv" / "bin" / "mrnet-app"
    command = [str(exe)] if exe.exists() else [sys.executable, "-m", "mrnet.app.cli"]
    return subprocess.run(command + list(args), capture_output=True, text=True, timeout=120)


def test_help_lists_the_options_and_binds_locally_by_default():
    result = _mrnet_app("--help")
    assert result.returncode == 0, result.stderr
    for option in ("--models", "--host", "--port", "--max-upload-mb", "--debug"):
        assert option in result.stdout
    assert "127.0.0.1" in result.stdout


def test_a_bad_option_is_one_line_and_exit_status_2():
    result = _mrnet_app("--concurrency", "0")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == ["error: --concurrency must be at least 1, not 0 [BAD_OPTION]"]


def test_a_missing_bundle_is_one_line_and_exit_status_3(tmp_path):
    result = _mrnet_app("--models", str(tmp_path / "no-bundle"))
    assert result.returncode == 3
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].endswith("[BUNDLE_NOT_FOUND]") and "Traceback" not in result.stderr
