"""Training for real, on phantoms: it learns, it resumes exactly, and the experiment commands work."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from helpers import train_cli
from mrnet.infer.synthetic.dataset import write_dataset
from mrnet.infer.synthetic.phantom import PhantomConfig
from mrnet.train.rundir import read_run


@pytest.mark.slow
def test_sagittal_acl_learns_with_the_demo_preset(tmp_path_factory):
    # The demo data set of `make models` (160 + 40 exams); the tuning split holds 32 of the 160.
    root = tmp_path_factory.mktemp("learning")
    write_dataset(root, 160, 40, seed=0, config=PhantomConfig(slice_range=(17, 20)))
    out = root / "run"
    train_cli("baseline", str(root), "--out", str(out), "--preset", "demo", "--planes", "sagittal", "--tasks", "acl")
    summary = json.loads((out / "models" / "sagittal-acl" / "done.json").read_text())
    assert summary["tune"]["auc"] >= 0.8, summary["tune"]
    assert summary["valid"]["auc"] >= 0.7, summary["valid"]  # held-out exams, not a tuning artefact
    history = (out / "models" / "sagittal-acl" / "metrics.csv").read_text().splitlines()
    assert len(history) == 1 + 10 and history[0].startswith("epoch,lr,train_loss")
    assert (out / "report.md").exists() and (out / "learning_curves.png").exists() and (out / "roc.png").exists()


def _train_command(data: Path, out: Path) -> list[str]:
    return [sys.executable, "-m", "mrnet.train.cli", "baseline", str(data), "--out", str(out), "--preset", "demo",
            "--planes", "sagittal", "--tasks", "acl", "--epochs", "4", "--quiet"]


def _epochs_done(out: Path) -> int:
    metrics = out / "models" / "sagittal-acl" / "metrics.csv"
    return len(metrics.read_text().splitlines()) - 1 if metrics.exists() else 0


@pytest.mark.slow
def test_a_run_killed_mid_training_resumes_to_the_same_metrics(phantom_root, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    subprocess.run(_train_command(phantom_root, straight), check=True, env=env, capture_output=True)

    process = subprocess.Popen(_train_command(phantom_root, killed), env=env, stdout=subprocess.DEVNULL,
                               stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while _epochs_done(killed) < 2 and time.time() < deadline and process.poll() is None:
        time.sleep(0.05)
    assert process.poll() is None, "the run finished before it could be killed"
    os.kill(process.pid, signal.SIGKILL)
    process.wait()
    assert 2 <= _epochs_done(killed) < 4 and not (killed / "models" / "sagittal-acl" / "done.json").exists()

    resumed = subprocess.run(_train_command(phantom_root, killed), env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    model = Path("models") / "sagittal-acl"
    a = json.loads((straight / model / "done.json").read_text())
    b = json.loads((killed / model / "done.json").read_text())
    for key in ("selected_epoch", "tune", "valid", "valid_youden", "valid_auc_ci95"):
        assert a[key] == b[key], key
    assert (straight / model / "predictions.csv").read_text() == (killed / model / "predictions.csv").read_text()
    assert (straight / model / "metrics.csv").read_text().split("seconds")[0] == \
        (killed / model / "metrics.csv").read_text().split("seconds")[0]


def test_a_run_folder_refuses_another_configuration(tiny_run, phantom_root):
    from typer.testing import CliRunner

    from mrnet.train.cli import app

    result = CliRunner().invoke(app, ["baseline", str(phantom_root), "--out", str(tiny_run), "--preset", "demo",
                                      "--epochs", "2", "--quiet"])
    assert result.exit_code == 2 and "RUN_CONFIG_DIFFERS" in result.output
    again = CliRunner().invoke(app, ["baseline", str(phantom_root), "--out", str(tiny_run), "--preset", "demo",
                                     "--epochs", "1", "--quiet"])
    assert again.exit_code == 0, again.output  # the same configuration: everything is already done


def test_advtrain_writes_a_comparison_report(tiny_run, phantom_root, tmp_path):
    out = tmp_path / "adv"
    train_cli("advtrain", str(phantom_root), "--from", str(tiny_run), "--out", str(out), "--eps", "1e-3",
              "--retrain-pct", "10", "--epochs", "1", "--jobs", "2")
    run = read_run(out)
    assert run.kind == "advtrain" and run.spec.eps == 1e-3
    summary = json.loads((out / "models" / "coronal-meniscus" / "done.json").read_text())
    assert summary["mode"] == "advtrain" and summary["protocol"] == "seed"
    rows = (out / "models" / "coronal-meniscus" / "metrics.csv").read_text().splitlines()
    assert [r.split(",")[0] for r in rows[1:]] == ["0", "1"]
    assert rows[2].split(",")[-2] == "2"  # 10 % of 19 fit exams, rounded: 2 adversarial exams per epoch
    report = (out / "report.md").read_text()
    assert "ΔAUC" in report and "synthetic knee phantom" in report


def test_sweep_writes_table2_and_skips_finished_runs(phantom_root, tmp_path):
    baseline = tmp_path / "baseline"
    train_cli("baseline", str(phantom_root), "--out", str(baseline), "--preset", "demo", "--planes", "sagittal",
              "--tasks", "acl", "--epochs", "1")
    out = tmp_path / "sweep"
    args = ["sweep", str(phantom_root), "--from", str(baseline), "--out", str(out), "--eps", "0,1e-5",
            "--retrain-pct", "5,10", "--table-eps", "1e-5", "--epochs", "1"]
    train_cli(*args)
    table = (out / "table2.md").read_text()
    assert "| **mean** | baseline |" in table and "| **mean** | baseline + advtrain |" in table
    assert "5 %" in table and "10 %" in table
    grid = (out / "grid.csv").read_text().splitlines()
    assert len(grid) == 1 + 4 and all(",sagittal-acl," in row for row in grid[1:])
    runs = sorted((out / "runs").iterdir())
    assert len(runs) == 4
    stamps = {p: p.stat().st_mtime for p in (out / "runs").rglob("done.json")}
    train_cli(*args)
    assert stamps == {p: p.stat().st_mtime for p in (out / "runs").rglob("done.json")}
