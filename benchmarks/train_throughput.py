"""Training throughput on this machine: a clean step, an FGSM step, and the data loader alone.

Uses the trainer's own code path: `MRNet.forward_volume` + `weighted_bce` + Adam for a clean step
(train.loop._train_epoch), `train.adversarial.fgsm` on the channels_last normalised input and then
a step on x_adv for an FGSM step, and `train.data.PlaneDataset` + `EpochSampler` + `loader` over a
phantom data set (augmentation on, as in the paper preset) for the loader. Exams have S slices.

    .venv/bin/python benchmarks/train_throughput.py [--runs 5] [--slices 32] [--quick] [--workers 0]

Prints slices/s for each (AlexNet, the paper's backbone; tiny for reference), the FGSM overhead
(FGSM step time / clean step time) and whether the loader outruns a training step by 5x or more
(the target: with one exam per step, a slower loader would leave the model waiting).
Steps and loader passes are interleaved round by round; medians are reported.
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from common import load_average, log, machine, print_table

LOADER_TARGET = 5.0


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="rounds (each: one clean step, one FGSM step, "
                                                             "one loader pass per backbone)")
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--exams", type=int, default=12, help="phantom exams the loader reads per pass")
    parser.add_argument("--workers", type=int, default=0, help="loader processes (the trainer's default is 0)")
    parser.add_argument("--quick", action="store_true", help="3 rounds")
    args = parser.parse_args(argv)
    runs = 3 if args.quick else args.runs

    import torch

    from mrnet.infer.dataset import load_split
    from mrnet.infer.synthetic.dataset import write_dataset
    from mrnet.infer.synthetic.phantom import PhantomConfig
    from mrnet.train.adversarial import fgsm
    from mrnet.train.data import EpochSampler, PlaneDataset, loader, weighted_bce
    from mrnet.train.loop import _to_input
    from mrnet.train.model import MRNet
    from mrnet.train.presets import get_preset

    paper = get_preset("paper")
    threads = torch.get_num_threads()
    print(f"machine: {machine()}; torch {torch.__version__}, {threads} threads; load average at start: {load_average()}")

    scratch = tempfile.TemporaryDirectory(prefix="mrnet-train-bench-")
    root = Path(scratch.name)
    write_dataset(root, args.exams, 1, seed=3, config=PhantomConfig(slice_range=(args.slices, args.slices)),
                  workers=min(2, os.cpu_count() or 1))
    split = load_split(root, "train")
    dataset = PlaneDataset(split, "sagittal", "acl", augment=paper.augment)
    volume, label, _ = dataset[0]
    weights = (0.77, 0.23)

    def make(backbone):
        model = MRNet(backbone).to(memory_format=torch.channels_last)  # as fit_model
        model.train()
        optimiser = torch.optim.Adam(model.parameters(), lr=paper.lr, weight_decay=paper.weight_decay)
        loss_fn = lambda logit, target: weighted_bce(logit, target, weights)  # noqa: E731

        def clean():
            loss = loss_fn(model.forward_volume(volume), label)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()

        def adversarial():
            x_adv = fgsm(model, _to_input(volume), label, paper.eps, clamp="valid", loss_fn=loss_fn)
            loss = loss_fn(model(x_adv), label)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()

        return clean, adversarial

    epoch = [0]

    def loader_pass():
        epoch[0] += 1
        count = 0
        for v, _, _ in loader(dataset, EpochSampler(np.arange(len(dataset)), 0, epoch[0]), args.workers):
            count += 1
        return count

    steps = {}
    for backbone in ("alexnet", "tiny"):
        clean, adversarial = make(backbone)
        steps[f"{backbone} clean step"], steps[f"{backbone} FGSM step"] = clean, adversarial
    times = {name: [] for name in [*steps, "loader pass"]}
    for fn in steps.values():
        fn()  # warm-up
    loader_pass()
    for r in range(runs):
        for name, fn in steps.items():
            started = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - started)
        started = time.perf_counter()
        exams = loader_pass()
        times["loader pass"].append((time.perf_counter() - started) / exams)
        log(f"round {r + 1}/{runs}: " + ", ".join(f"{n} {t[-1]:.3f}s" for n, t in times.items()))

    median = {name: statistics.median(v) for name, v in times.items()}
    rate = {name: args.slices / t for name, t in median.items()}
    rows = []
    for backbone in ("alexnet", "tiny"):
        clean = median[f"{backbone} clean step"]
        for kind in ("clean step", "FGSM step"):
            name = f"{backbone} {kind}"
            rows.append([name, f"{median[name]:.3f}", f"{rate[name]:.1f}", f"{median[name] / clean:.2f}x"])
    rows.append(["loader (read + augment)", f"{median['loader pass']:.4f}", f"{rate['loader pass']:.0f}", ""])
    print_table(f"Training throughput, S = {args.slices} slices per exam (one exam per step), {runs} interleaved "
                f"rounds, loader: {args.workers} workers, augmentation {'on' if paper.augment else 'off'} (paper "
                f"preset), {args.exams} phantom exams per pass; load average {load_average()}",
                ["what", "median s/exam", "slices/s", "vs clean step"], rows)
    print()
    for backbone in ("alexnet", "tiny"):
        overhead = median[f"{backbone} FGSM step"] / median[f"{backbone} clean step"]
        ratio = rate["loader pass"] / rate[f"{backbone} clean step"]
        verdict = "met" if ratio >= LOADER_TARGET else "NOT met"
        print(f"{backbone}: FGSM overhead {overhead:.2f}x a clean step; loader {ratio:.1f}x faster than a clean "
              f"step (target >= {LOADER_TARGET:.0f}x: {verdict})")
    scratch.cleanup()


if __name__ == "__main__":
    main()
