"""Robustness under attack: the attacks against ART's, the joint fused attack, the CLI on a phantom run."""

from __future__ import annotations

import csv
import json
import subprocess
import sys

import numpy as np
import pytest
import torch

from helpers import train_cli
from mrnet.infer.errors import InputError
from mrnet.train import attacks
from mrnet.train.metrics import auc
from mrnet.train.model import MRNet
from mrnet.train.robustness import AttackSettings, settings_for

EPS = (0.0, 2.0, 8.0)  # grey levels
PGD_STEPS = 2


def _margin(net, label: int):
    """The loss the attacks ascend: the logit margin (1 - 2y) z (robustness.py says why)."""
    return lambda volumes: (1 - 2 * label) * net.forward_volume(volumes[0]).sum()


@pytest.fixture(scope="module")
def small_net():
    torch.manual_seed(0)
    net = MRNet("tiny").eval().requires_grad_(False)
    volume = torch.rand(4, 64, 64, generator=torch.Generator().manual_seed(1)) * 255
    volume[0, :8] = 0.0  # some voxels at the ends of the range, where the clip acts
    volume[1, :8] = 255.0
    return net, volume


def _art_classifier(net, shape):
    """The same network as an ART PyTorchClassifier: logits (0, z), so its cross-entropy is BCE(z)."""
    from art.estimators.classification import PyTorchClassifier

    class TwoLogits(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.net = net

        def forward(self, x):
            z = torch.stack([self.net.forward_volume(v) for v in x])  # (N, 1)
            return torch.cat([torch.zeros_like(z), z], dim=1)

    return PyTorchClassifier(TwoLogits(), loss=torch.nn.CrossEntropyLoss(), input_shape=tuple(shape), nb_classes=2,
                             clip_values=(0.0, 255.0), device_type="cpu")


@pytest.mark.parametrize("label", [0, 1])
def test_fgsm_and_pgd_match_art(small_net, label):
    from art.attacks.evasion import FastGradientMethod, ProjectedGradientDescentPyTorch

    net, volume = small_net
    classifier = _art_classifier(net, volume.shape)
    x, y = volume[None].numpy(), np.eye(2, dtype=np.float32)[[label]]
    eps = 6.0
    theirs = FastGradientMethod(classifier, norm=np.inf, eps=eps, targeted=False).generate(x, y)[0]
    (ours,) = attacks.fgsm(_margin(net, label), [volume], eps)
    assert np.allclose(ours.numpy(), theirs, atol=1e-4)
    assert (np.abs(ours.numpy() - volume.numpy()) > eps / 2).mean() > 0.5  # it did move, by eps
    assert ours.min() >= 0 and ours.max() <= 255

    theirs = ProjectedGradientDescentPyTorch(classifier, norm=np.inf, eps=eps, eps_step=eps / 4, max_iter=5,
                                             targeted=False, num_random_init=0, verbose=False).generate(x, y)[0]
    (ours,) = attacks.pgd(_margin(net, label), [volume], eps, 5, step_size=eps / 4, random_start=False)
    assert np.allclose(ours.numpy(), theirs, atol=1e-3)
    assert float((ours - volume).abs().max()) <= eps + 1e-4


def test_pgd_is_seeded_and_stays_in_the_ball(small_net):
    net, volume = small_net

    def run(seed):
        return attacks.pgd(_margin(net, 1), [volume], 4.0, 2, generators=[torch.Generator().manual_seed(seed)])[0]

    first, again, other = run(5), run(5), run(6)
    assert torch.equal(first, again) and not torch.equal(first, other)
    assert float((first - volume).abs().max()) <= 4.0 + 1e-4 and first.min() >= 0 and first.max() <= 255


@pytest.mark.parametrize("steps", [1, 2, 10])
def test_pgd_ends_where_fgsm_does_on_a_linear_loss(small_net, steps):
    """The step 2.5 eps / steps crosses the ball from any random start, so on a linear loss (where
    FGSM is optimal) PGD with any number of steps reaches FGSM's point; a fixed eps/4 would not."""
    _, volume = small_net
    w = torch.randn(volume.shape, generator=torch.Generator().manual_seed(4))
    linear = lambda volumes: (w * volumes[0]).sum()  # noqa: E731
    eps = 4.0
    (x,) = attacks.pgd(linear, [volume], eps, steps, generators=[torch.Generator().manual_seed(3)])
    assert torch.allclose(x, attacks.fgsm(linear, [volume], eps)[0], atol=1e-4)


def test_eps_zero_is_the_identity(small_net):
    net, volume = small_net
    assert torch.equal(attacks.fgsm(_margin(net, 1), [volume], 0.0)[0], volume)
    assert torch.equal(attacks.pgd(_margin(net, 1), [volume], 0.0, 3)[0], volume)


def test_the_joint_fused_attack_is_the_plane_attacks_with_the_weights_signs():
    """What robustness.py relies on to attack a fused task without a joint pass of its own."""
    torch.manual_seed(2)
    nets = [MRNet("tiny").eval().requires_grad_(False) for _ in range(3)]
    volumes = [torch.rand(s, 64, 64, generator=torch.Generator().manual_seed(s)) * 255 for s in (3, 4, 5)]
    weights, bias, label, eps = (0.8, -0.5, 1.2), 0.3, 1, 5.0
    seeds = [11, 12, 13]

    def joint(vs):
        return (1 - 2 * label) * (bias + sum(w * n.forward_volume(v).sum() for w, n, v in zip(weights, nets, vs)))

    together = attacks.pgd(joint, volumes, eps, 3, generators=[torch.Generator().manual_seed(s) for s in seeds])
    together_fgsm = attacks.fgsm(joint, volumes, eps)
    for net, volume, weight, seed, x, x_fgsm in zip(nets, volumes, weights, seeds, together, together_fgsm):
        direction = 1 if weight > 0 else -1
        alone = _margin(net, label if direction == 1 else 1 - label)
        (one,) = attacks.pgd(alone, [volume], eps, 3, generators=[torch.Generator().manual_seed(seed)])
        assert torch.allclose(x, one, atol=1e-4)
        assert torch.allclose(x_fgsm, attacks.fgsm(alone, [volume], eps)[0], atol=1e-4)


@pytest.mark.parametrize("changes, option", [
    ({"attacks": ("fgsm", "cw")}, "attack"), ({"eps": (0.0, -1.0)}, "eps"), ({"eps": (2.0, 1.0)}, "eps"),
    ({"eps": (float("nan"),)}, "eps"), ({"pgd_steps": 0}, "pgd_steps"), ({"split": "train"}, "split"),
])
def test_bad_settings_are_refused_by_name(changes, option):
    with pytest.raises(InputError) as refused:
        AttackSettings(**changes)
    assert refused.value.code == "BAD_OPTION" and refused.value.option == option


def test_the_demo_ladder_is_short():
    demo, paper = settings_for("demo"), settings_for("paper")
    assert len(demo.eps) < len(paper.eps) and demo.pgd_steps < paper.pgd_steps == 10


# ---------------------------------------------------------------------------------------------
# On a phantom run: the three ACL models (one epoch) and their one-epoch FGSM retraining, attacked
# against that baseline (one task keeps it to a few minutes on two busy cores).


@pytest.fixture(scope="module")
def attacked(phantom_root, tmp_path_factory):
    folder = tmp_path_factory.mktemp("robustness")
    baseline, retrained = folder / "baseline", folder / "advtrain"
    train_cli("baseline", str(phantom_root), "--out", str(baseline), "--preset", "demo", "--epochs", "1",
              "--tasks", "acl")
    train_cli("advtrain", str(phantom_root), "--from", str(baseline), "--out", str(retrained), "--epochs", "1")
    out = folder / "out"
    train_cli("robustness", str(retrained), "--against", str(baseline), "--out", str(out), "--eps",
              ",".join(f"{e:g}" for e in EPS), "--pgd-steps", str(PGD_STEPS))
    with open(out / "robustness.csv", newline="") as stream:
        rows = list(csv.DictReader(stream))
    return {"baseline": baseline, "retrained": retrained, "out": out, "rows": rows}


def _auc(rows, run, model, attack, eps):
    (row,) = [r for r in rows if (r["run"], r["model"], r["attack"], float(r["eps"])) == (run, model, attack, eps)]
    return float(row["auc"])


@pytest.mark.slow
def test_the_cli_writes_the_csv_the_plot_and_the_report_sections(attacked):
    out, rows = attacked["out"], attacked["rows"]
    assert {"run", "model", "attack", "eps", "auc", "accuracy", "sensitivity", "specificity"} <= set(rows[0])
    assert {r["model"] for r in rows} == {"axial-acl", "coronal-acl", "sagittal-acl", "fused-acl"}
    assert len(rows) == 2 * 4 * 2 * len(EPS)  # runs x models x attacks x eps
    assert (out / "robustness.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "robustness.png").stat().st_size > 20_000
    with open(out / "robustness_vs_baseline.csv", newline="") as stream:
        assert len(list(csv.DictReader(stream))) == 4 * 2 * len(EPS)
    report = (attacked["retrained"] / "report.md").read_text()
    assert "## Robustness under attack" in report and "below one quantisation step" in report
    assert "](../out/robustness.png)" in report and "](../out/robustness.csv)" in report
    assert "Robustness" not in (attacked["baseline"] / "report.md").read_text()  # evaluated as the reference only
    assert "Not for clinical use" in (out / "robustness.md").read_text()


@pytest.mark.slow
def test_eps_zero_reproduces_the_runs_own_predictions(attacked):
    from mrnet.train.fusion import fit_fusion
    from mrnet.train.rundir import RunFolder

    rows = attacked["rows"]
    for run in ("baseline", "advtrain"):
        folder = RunFolder(attacked["baseline" if run == "baseline" else "retrained"])
        for key, model in folder.finished_models().items():
            valid = model.predictions["valid"]
            for attack in ("fgsm", "pgd"):
                assert abs(_auc(rows, run, key, attack, 0.0) - auc(valid["label"], valid["logit"])) <= 1e-6
            (row,) = [r for r in rows if (r["run"], r["model"], r["attack"], r["eps"]) == (run, key, "pgd", "0")]
            for metric in ("accuracy", "sensitivity", "specificity"):  # at the same (Youden) threshold
                assert abs(float(row[metric]) - model.summary["valid_youden"][metric]) <= 1e-6
        _, fused = fit_fusion(folder.path, folder.record().spec.planes, folder.record().spec.tasks)
        for task, by_subset in fused.items():
            clean = by_subset["axial+coronal+sagittal"]["valid"]["auc"]
            assert abs(_auc(rows, run, f"fused-{task}", "fgsm", 0.0) - clean) <= 1e-6


@pytest.mark.slow
def test_auc_falls_with_eps_and_pgd_is_at_least_as_strong_as_fgsm(attacked):
    rows = attacked["rows"]
    noise = 0.1  # a generous share of the bootstrap CI's width on 8 exams (one pair swapped moves AUC by ~0.06)
    for run in ("baseline", "advtrain"):
        for model in {r["model"] for r in rows}:
            for attack in ("fgsm", "pgd"):
                curve = [_auc(rows, run, model, attack, e) for e in EPS]
                if np.isnan(curve[0]):
                    continue
                assert all(b <= a + noise for a, b in zip(curve, curve[1:])), (run, model, attack, curve)
                assert curve[-1] < min(curve[0], 0.5), (run, model, attack, curve)  # below chance at the top
            for eps in EPS[1:]:
                assert _auc(rows, run, model, "pgd", eps) <= _auc(rows, run, model, "fgsm", eps) + noise


@pytest.mark.slow
def test_the_fused_cells_are_the_joint_attack_through_autograd(attacked):
    """The assembled fused logits equal a joint PGD over the three planes, on the run's own models."""
    from mrnet.infer.dataset import load_split
    from mrnet.train.checkpoint import load_torch
    from mrnet.train.fusion import fit_fusion
    from mrnet.train.robustness import _seed
    from mrnet.train.rundir import RunFolder

    folder = RunFolder(attacked["retrained"])
    record = folder.record()
    fusion = fit_fusion(folder.path, record.spec.planes, record.spec.tasks)[0]["acl"]["axial+coronal+sagittal"]
    nets = []
    for plane in fusion["planes"]:
        best = load_torch(folder.model(f"{plane}-acl").best)
        net = MRNet(best["backbone"])
        net.load_state_dict(best["model"])
        nets.append(net.eval().requires_grad_(False).to(memory_format=torch.channels_last))
    valid = load_split(record.spec.data, "valid")
    exams = {}
    with open(attacked["out"] / "robustness_exams.csv", newline="") as stream:
        for r in csv.DictReader(stream):
            if (r["run"], r["model"], r["attack"], float(r["eps"])) == ("advtrain", "fused-acl", "pgd", 8.0):
                exams[r["exam_id"]] = float(r["logit"])
    for exam_id in valid.ids[:2]:
        label = valid.label(exam_id, "acl")
        volumes = [torch.from_numpy(np.array(valid.volume(exam_id, p), dtype=np.float32)) for p in fusion["planes"]]

        def fused(vs):
            return fusion["bias"] + sum(w * n.forward_volume(v).sum() for w, n, v in zip(fusion["weights"], nets, vs))

        generators = [torch.Generator().manual_seed(_seed(0, exam_id, p, 8.0)) for p in fusion["planes"]]
        adversarial = attacks.pgd(lambda vs: (1 - 2 * label) * fused(vs), volumes, 8.0, PGD_STEPS,
                                  generators=generators)
        with torch.no_grad():
            assert abs(float(fused(adversarial)) - exams[exam_id]) < 1e-3


@pytest.mark.parametrize("options, option", [
    (["--attack", "fgsm,cw"], "--attack"), (["--eps", "0,x"], "--eps"), (["--eps", "0,-1"], "--eps"),
    (["--pgd-steps", "0"], "--pgd-steps"), (["--split", "train"], "--split"),
])
def test_bad_options_exit_2_in_one_line(options, option, tmp_path):
    # The options are checked before the runs are read, so no run is needed to see them refused.
    result = subprocess.run([sys.executable, "-m", "mrnet.train.cli", "robustness", str(tmp_path), "--out",
                             str(tmp_path / "out"), "--quiet", *options], capture_output=True, text=True)
    assert result.returncode == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"error: {option}: ") and lines[0].endswith("[BAD_OPTION]")
    assert not (tmp_path / "out").exists()


def test_a_run_that_is_not_one_is_refused(tmp_path):
    result = subprocess.run([sys.executable, "-m", "mrnet.train.cli", "robustness", str(tmp_path), "--out",
                             str(tmp_path / "out"), "--quiet"], capture_output=True, text=True)
    assert result.returncode == 2 and result.stderr.strip().endswith("[NOT_A_RUN]"), result.stderr


def test_the_settings_round_trip_through_json():
    settings = settings_for("demo")
    assert AttackSettings(**{k: tuple(v) if isinstance(v, list) else v
                             for k, v in json.loads(json.dumps(settings.to_dict())).items()}) == settings
