"""Replicate seeds: runs per seed, one tuning split for all, mean ± sd across seeds, and the
two-level comparison of retrained against baseline."""

from __future__ import annotations

import csv

import numpy as np
import pytest

from helpers import train_cli
from mrnet.train.comparison import Items, compare_replicates, mean_auc, mean_auc_ci
from mrnet.train.metrics import bootstrap_auc_ci, paired_bootstrap
from mrnet.train.rundir import read_run, replicate_folders

ONE_MODEL = ("--preset", "demo", "--planes", "sagittal", "--tasks", "acl", "--epochs", "1")


def test_with_one_seed_the_two_level_bootstrap_is_the_paired_bootstrap():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 120)
    a = labels * 0.5 + rng.normal(0, 0.5, 120)
    b = a + labels * 0.05
    two_level = compare_replicates([Items([labels], [a])], [Items([labels], [b])])
    paired = paired_bootstrap(labels, a, b)
    assert {k: two_level[k] for k in paired} == pytest.approx(paired)
    assert mean_auc_ci(Items([labels], [a])) == pytest.approx(bootstrap_auc_ci(labels, a))


def test_the_two_level_interval_widens_with_the_spread_across_seeds():
    rng = np.random.default_rng(1)
    labels = rng.integers(0, 2, 120)
    base = [labels * 0.5 + rng.normal(0, 0.5, 120) for _ in range(3)]
    # Every seed gains about the same, or the seeds disagree (one gains a lot, one loses).
    steady = compare_replicates([Items([labels], [x]) for x in base],
                                [Items([labels], [x + labels * 0.1]) for x in base])
    spread = compare_replicates([Items([labels], [x]) for x in base],
                                [Items([labels], [x + labels * g]) for x, g in zip(base, (0.5, 0.0, -0.2))])
    assert steady["low"] > 0 and steady["p_value"] < 0.05
    assert spread["high"] - spread["low"] > 2 * (steady["high"] - steady["low"])
    assert spread["sd_across_seeds"] > 5 * steady["sd_across_seeds"]
    per_seed = [mean_auc(Items([labels], [x + labels * g])) - mean_auc(Items([labels], [x]))
                for x, g in zip(base, (0.5, 0.0, -0.2))]
    assert spread["per_seed"] == pytest.approx(per_seed) and spread["delta"] == pytest.approx(np.mean(per_seed))


@pytest.mark.slow
def test_a_sweep_over_three_seeds_reports_mean_and_sd(phantom_root, tmp_path):
    baseline = tmp_path / "baseline"
    train_cli("baseline", str(phantom_root), "--out", str(baseline), *ONE_MODEL, "--seeds", "0,1,2")
    folders = replicate_folders(baseline)
    assert list(folders) == [0, 1, 2]
    records = [read_run(f) for f in folders.values()]
    assert [r.spec.seed for r in records] == [0, 1, 2]
    assert len({r.tune_ids for r in records}) == 1  # the tuning split belongs to the data, not the seed
    predictions = [(f / "models" / "sagittal-acl" / "predictions.csv").read_text() for f in folders.values()]
    assert len(set(predictions)) == 3  # three replicates, three different models
    set_report = (baseline / "report.md").read_text()
    assert "3 replicate seeds" in set_report and " ± " in set_report

    out = tmp_path / "sweep"
    train_cli("sweep", str(phantom_root), "--from", str(baseline), "--out", str(out), "--eps", "0,1e-3",
              "--retrain-pct", "10", "--epochs", "1")  # no --table-eps: a table for the non-zero eps
    table = (out / "table2.md").read_text()
    assert "eps = 1e-3" in table.replace("0.001", "1e-3") and "mean ± sd over the replicate seeds 0, 1, 2" in table
    assert "| **mean** | baseline + advtrain | " in table and " ± " in table.split("| **mean** | baseline + advtrain |")[1]
    with open(out / "table2.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    assert {r["seeds"] for r in rows if r["model"] == "mean"} == {"3"}
    with open(out / "grid.csv", newline="") as stream:
        grid = list(csv.DictReader(stream))
    assert len(grid) == 2 and {r["seeds"] for r in grid} == {"3"}
    assert all(float(r["delta_low"]) <= float(r["delta_auc"]) <= float(r["delta_high"]) for r in grid)
    assert len(list((out / "runs").iterdir())) == 6  # 2 configurations x 3 seeds


@pytest.mark.slow
def test_advtrain_of_a_replicate_set_retrains_each_seed(phantom_root, tmp_path):
    baseline = tmp_path / "baseline"
    train_cli("baseline", str(phantom_root), "--out", str(baseline), *ONE_MODEL, "--seeds", "3,4")
    adv = tmp_path / "adv"
    train_cli("advtrain", str(phantom_root), "--from", str(baseline), "--out", str(adv), "--eps", "1e-3",
              "--epochs", "1")
    folders = replicate_folders(adv)
    assert list(folders) == [3, 4]
    assert [read_run(f).spec.from_run for f in folders.values()] == \
        [str((baseline / f"seed-{s}").resolve()) for s in (3, 4)]
    report = (adv / "report.md").read_text()
    assert "two-level bootstrap" in report and "sd of Δ over seeds" in report
