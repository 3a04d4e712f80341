"""Uploaded files are deleted after use, and only those."""

from __future__ import annotations

import os
import time

from helpers import files_under

from mrnet.app.uploads import UploadJanitor, remove_uploads


def _upload(root, digest, name, content=b"dicom"):
    path = root / digest / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content)
    return path


def _wait_until(condition, timeout_s=10.0):
    deadline = time.monotonic() + timeout_s
    while not condition() and time.monotonic() < deadline:
        time.sleep(0.05)
    return condition()


def test_removes_the_requests_files_and_their_empty_folders_only(tmp_path):
    root = tmp_path / "uploads"
    mine = [_upload(root, "aa", "IM0001"), _upload(root, "bb", "IM0002")]
    other = _upload(root, "aa", "other.dcm")  # another upload in a shared folder
    outside = tmp_path / "examples" / "axial.npy"
    outside.parent.mkdir()
    outside.write_bytes(b"npy")

    assert remove_uploads([*mine, outside, root], root) == 2
    assert files_under(root) == [other]
    assert not (root / "bb").exists() and root.is_dir()
    assert outside.exists()


def test_without_grace_a_released_file_goes_at_once(tmp_path):
    root = tmp_path / "uploads"
    path = _upload(root, "aa", "knee.zip")
    janitor = UploadJanitor(root, grace_s=0)
    janitor.claim("s1", [path])
    janitor.release("s1", [path])
    assert files_under(root) == []


def test_a_file_two_sessions_uploaded_stays_until_both_have_read_it(tmp_path):
    root = tmp_path / "uploads"
    path = _upload(root, "aa", "knee.zip")  # the same content from two visitors: one path
    janitor = UploadJanitor(root, grace_s=0.2)
    janitor.claim("s1", [path])
    janitor.claim("s2", [path])
    janitor.release("s1", [path])
    time.sleep(0.5)
    assert path.exists() and janitor.pending() == 0
    janitor.release("s2", [path])
    assert path.exists() and janitor.pending() == 1  # the grace period
    assert _wait_until(lambda: files_under(root) == [])


def test_a_closed_tab_releases_everything_its_session_claimed(tmp_path):
    root = tmp_path / "uploads"
    paths = [_upload(root, "aa", "IM0001"), _upload(root, "bb", "IM0002")]
    janitor = UploadJanitor(root, grace_s=0.1)
    janitor.claim("tab", paths)
    janitor.release("tab")
    assert _wait_until(lambda: files_under(root) == [])


def test_a_file_claimed_again_within_the_grace_period_stays(tmp_path):
    root = tmp_path / "uploads"
    path = _upload(root, "aa", "knee.zip")
    janitor = UploadJanitor(root, grace_s=0.3)
    janitor.claim("s1", [path])
    janitor.release("s1", [path])
    janitor.claim("s2", [path])
    assert _wait_until(lambda: janitor.pending() == 0)
    assert path.exists()
    janitor.release("s2", [path])
    assert _wait_until(lambda: not path.exists())


def test_a_file_uploaded_again_after_release_is_left_to_its_new_uploader(tmp_path):
    root = tmp_path / "uploads"
    path = _upload(root, "aa", "knee.zip")
    janitor = UploadJanitor(root, grace_s=0.3)
    janitor.claim("s1", [path])
    janitor.release("s1", [path])
    # The same content uploaded again before its new uploader claims it: Gradio renames a fresh
    # file onto the same path.
    os.replace(_upload(tmp_path, "incoming", "knee.zip"), path)
    assert _wait_until(lambda: janitor.pending() == 0)
    assert path.exists()
