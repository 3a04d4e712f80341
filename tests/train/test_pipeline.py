"""The training library without the CLI, and the one error language of `mrnet-train`."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from mrnet.infer.bundle import load_bundle
from mrnet.infer.errors import InputError
from mrnet.train.cli import app
from mrnet.train.pipeline import Hooks, run_pipeline
from mrnet.train.presets import get_preset
from mrnet.train.robustness import settings_for
from mrnet.train.rundir import RunFolder, read_run
from mrnet.train.spec import RunSpec


def test_run_pipeline_from_python(phantom_root, tmp_path):
    preset = get_preset("demo").with_overrides(epochs=1, adv_epochs=1)
    spec = RunSpec(data=str(phantom_root), preset=preset, seed=3)
    heard = {"done": [], "stages": [], "exported": []}
    hooks = Hooks(model_done=lambda s: heard["done"].append(s["model"]),
                  stage=lambda name, n: heard["stages"].append((name, n)), exported=heard["exported"].append)
    result = run_pipeline(spec, tmp_path / "out", hooks=hooks)

    assert heard["stages"] == [("baseline", 9), ("advtrain", 9), ("export", 9), ("robustness", 2)]
    assert len(heard["done"]) == 18 and len(heard["exported"]) == 9
    baseline, advtrain = read_run(result.baseline.runs[0].folder), read_run(result.advtrain.runs[0].folder)
    assert baseline.spec == spec.__class__.from_dict(spec.identity())  # run.json reads back as the same spec
    assert advtrain.kind == "advtrain" and advtrain.spec.from_run == str((tmp_path / "out" / "baseline").resolve())
    assert advtrain.spec.eps == preset.eps and advtrain.tune_ids == baseline.tune_ids
    assert len(RunFolder(result.advtrain.runs[0].folder).finished_models()) == 9
    bundle = load_bundle(result.bundle)
    assert bundle.manifest["provenance"]["training"]["config_hash"] == advtrain.config_hash
    report = result.advtrain.report.read_text()
    assert report.startswith("# MRNet FGSM retraining report")
    assert "| leaderboard: mean of the 3 fused task AUCs |" in report and "mean of the 9 single-plane AUCs" in report
    # The retrained run under attack against its baseline, with the demo preset's short ladder.
    assert result.robustness.folder == tmp_path / "out" / "robustness"
    rows = (result.robustness.files["robustness"]).read_text().splitlines()
    assert len(rows) == 1 + 2 * 12 * 2 * len(settings_for("demo").eps)  # header, runs x models x attacks x eps
    assert "## Robustness under attack" in result.advtrain.report.read_text()

    written = result.robustness.files["robustness"].stat().st_mtime_ns
    again = run_pipeline(spec, tmp_path / "out")  # everything finished: read back, nothing retrained
    assert [s["valid"] for s in again.advtrain.runs[0].summaries] == \
        [s["valid"] for s in result.advtrain.runs[0].summaries]
    assert again.robustness.files["robustness"].stat().st_mtime_ns == written  # nor attacked again
    assert "## Robustness under attack" in again.advtrain.report.read_text()


def test_a_spec_refuses_a_bad_option_by_name(phantom_root):
    with pytest.raises(InputError) as refused:
        RunSpec(data=str(phantom_root), preset=get_preset("demo"), select_on="test")
    assert refused.value.code == "BAD_OPTION" and refused.value.option == "select_on"
    assert refused.value.one_line().startswith("select_on: ")
    assert refused.value.one_line(cli=True).startswith("--select-on: ")


def _train_cli(*args: str):
    """`mrnet-train` as a user runs it: a process, its exit status and what it printed."""
    return subprocess.run([sys.executable, "-m", "mrnet.train.cli", *args], capture_output=True, text=True)


@pytest.mark.parametrize("options, code", [
    (["--device", "cuda"], "CUDA_UNAVAILABLE"),
    (["--pretrained", "/no/such/file"], "BAD_PRETRAINED"),
])
def test_what_cannot_run_here_is_refused_in_one_line_before_training(options, code, phantom_root, tmp_path):
    import torch

    if code == "CUDA_UNAVAILABLE" and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    out = tmp_path / "run"
    result = _train_cli("baseline", str(phantom_root), "--out", str(out), "--preset", "demo", "--quiet", *options)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and lines[0].endswith(f"[{code}]"), result.stderr
    assert f"--{options[0][2:]}" in lines[0] and "Traceback" not in result.stderr
    assert not out.exists()  # refused before anything was written


def test_an_export_that_loses_parity_exits_4(tiny_run, tmp_path, monkeypatch):
    from mrnet.train import export

    monkeypatch.setattr(export, "PARITY_RTOL", 0.0)
    monkeypatch.setattr(export, "PARITY_ATOL", -1.0)  # no difference can be within a negative tolerance
    result = CliRunner().invoke(app, ["export", str(tiny_run), "--out", str(tmp_path / "bundle"), "--quiet"])
    assert result.exit_code == 4 and "PARITY_FAILED" in result.output
    assert not (tmp_path / "bundle").exists()


def test_run_json_keeps_its_format(tiny_run):
    record = json.loads((tiny_run / "run.json").read_text())
    assert list(record) == ["kind", "config", "config_hash", "data_fingerprint", "synthetic_data", "tune_ids",
                            "versions"]
    assert read_run(tiny_run).to_dict() == record
