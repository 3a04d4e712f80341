"""The MRNet-v1.0 data layer: reading back a phantom, and `check` catching every fault."""

from __future__ import annotations

import numpy as np
import pytest
from typer.testing import CliRunner

from mrnet.infer.dataset import check_dataset, fingerprint, load_split
from mrnet.infer.errors import DatasetError
from mrnet.infer.registry import PLANES, SPLITS, TASKS
from mrnet.train.cli import app


def test_phantom_reads_back_memory_mapped(phantom_root):
    train = load_split(phantom_root, "train")
    valid = load_split(phantom_root, "valid")
    assert train.ids[0] == "0000" and len(train) == 24
    assert valid.ids[0] == "0024" and len(valid) == 8  # valid ids continue after train, as in MRNet
    volume = train.volume("0003", "sagittal")
    assert isinstance(volume, np.memmap)
    assert volume.dtype == np.uint8 and volume.shape[1:] == (256, 256) and 17 <= volume.shape[0] <= 20
    assert (volume.min(), volume.max()) == (0, 255)
    for task in TASKS:
        assert set(np.unique(train.labels[task])) <= {0, 1}
    report = check_dataset(phantom_root, deep=True)
    assert report.problems == []


def test_fingerprint_changes_with_labels(phantom_root, tmp_path):
    train = load_split(phantom_root, "train")
    relabelled = type(train)(train.root, train.split, train.ids,
                             {**train.labels, "acl": 1 - train.labels["acl"]})
    assert fingerprint([train]) == fingerprint([train])
    assert fingerprint([train]) != fingerprint([relabelled])


def _write_mini(root, train_ids=("0000", "0001", "0002"), valid_ids=("0003", "0004")):
    """A tiny, valid MRNet-layout folder written directly (fast to corrupt)."""
    rng = np.random.default_rng(0)
    for split, ids in zip(SPLITS, (train_ids, valid_ids)):
        for plane in PLANES:
            (root / split / plane).mkdir(parents=True)
            for exam_id in ids:
                volume = rng.integers(0, 256, (17, 256, 256), dtype=np.uint8)
                volume[0, 0, :2] = (0, 255)
                np.save(root / split / plane / f"{exam_id}.npy", volume)
        for task in TASKS:
            (root / f"{split}-{task}.csv").write_text("".join(f"{i},1\n" for i in ids))


@pytest.fixture
def mini(tmp_path):
    _write_mini(tmp_path)
    return tmp_path


def _codes(root):
    return {(p.code, p.path.replace(str(root) + "/", "")) for p in check_dataset(root).problems}


def test_clean_mini_set_has_no_problems(mini):
    assert check_dataset(mini).problems == []


@pytest.mark.parametrize("fault, code, file", [
    (lambda r: (r / "train/axial/0001.npy").unlink(), "MISSING_VOLUME", "train/axial/0001.npy"),
    (lambda r: np.save(r / "valid/coronal/0099.npy", np.zeros((17, 256, 256), np.uint8)),
     "EXTRA_FILE", "valid/coronal/0099.npy"),
    (lambda r: np.save(r / "train/sagittal/0002.npy", np.zeros((17, 256, 256), np.float32)),
     "WRONG_DTYPE", "train/sagittal/0002.npy"),
    (lambda r: np.save(r / "train/sagittal/0000.npy", np.zeros((17, 256, 128), np.uint8)),
     "WRONG_SHAPE", "train/sagittal/0000.npy"),
    (lambda r: (r / "train-acl.csv").write_text("0000,1\n0001,2\n0002,0\n"), "LABEL_NOT_BINARY", "train-acl.csv"),
    (lambda r: (r / "valid-meniscus.csv").write_text("id,label\n0003,1\n0004,0\n"), "CSV_HEADER",
     "valid-meniscus.csv"),
    (lambda r: (r / "train-abnormal.csv").write_text("0000,1\n0001;1\n0002,1\n"), "MALFORMED_LINE",
     "train-abnormal.csv"),
    (lambda r: (r / "train-meniscus.csv").write_text("0000,1\n0001,1\n"), "IDS_DIFFER_BETWEEN_CSVS",
     "train-meniscus.csv"),
    (lambda r: (r / "train/axial/0000.npy").write_bytes(b"not numpy"), "UNREADABLE_VOLUME", "train/axial/0000.npy"),
])
def test_check_catches_each_fault_and_names_the_file(mini, fault, code, file):
    fault(mini)
    assert (code, file) in _codes(mini)
    report = check_dataset(mini)
    assert any(p.code == code for p in report.errors)


def test_positive_but_not_abnormal_is_a_warning(mini):
    (mini / "train-abnormal.csv").write_text("0000,1\n0001,0\n0002,1\n")
    report = check_dataset(mini)
    assert report.errors == []
    assert [(p.code, p.path.endswith("train-acl.csv")) for p in report.warnings][0] == \
        ("POSITIVE_BUT_NOT_ABNORMAL", True)


def test_check_cli_lists_every_problem_and_exits_non_zero(mini):
    (mini / "train/axial/0001.npy").unlink()
    (mini / "valid-acl.csv").write_text("0003,1\n0004,7\n")
    np.save(mini / "valid/coronal/0004.npy", np.zeros((17, 256, 256), np.int16))
    result = CliRunner().invoke(app, ["check", str(mini)])
    assert result.exit_code == 2
    for needle in ("0001.npy", "MISSING_VOLUME", "valid-acl.csv", "LABEL_NOT_BINARY", "0004.npy", "WRONG_DTYPE"):
        assert needle in result.output
    assert "3 error(s)" in result.output


def test_check_cli_summarises_a_clean_set(phantom_root):
    result = CliRunner().invoke(app, ["check", str(phantom_root)], terminal_width=200)
    assert result.exit_code == 0, result.output
    assert "0 error(s)" in result.output
    assert "17-20" in result.output


def test_load_split_refuses_a_broken_split(mini):
    (mini / "train/coronal/0002.npy").unlink()
    with pytest.raises(DatasetError) as caught:
        load_split(mini, "train")
    assert caught.value.code == "MISSING_VOLUME"
    assert "train/coronal/0002.npy" in str(caught.value)
    load_split(mini, "valid")  # the other split is fine
