"""The cost of attacking one exam against a clean forward pass, on the CPU at hand.

Uses the evaluation's own code path (`mrnet.train.robustness`): an MRNet in eval mode with its
parameters frozen and channels_last weights, the grey-level volume (S, 256, 256), `attacks.fgsm` and
`attacks.pgd` (random start, steps of 2.5 eps / steps) on the logit margin, then the forward pass that scores
the adversarial exam. Random weights: the cost does not depend on them.

    .venv/bin/python benchmarks/attack_cost.py [--runs 5] [--slices 32] [--pgd-steps 10] [--backbones alexnet,tiny]

Variants are interleaved round by round; medians are reported, and each variant's ratio to the
clean forward pass. A fused task's attack adds nothing to its three plane attacks (robustness.py).
"""

from __future__ import annotations

import argparse
import statistics
import time

from common import load_average, log, machine, print_table


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5, help="interleaved rounds")
    parser.add_argument("--slices", type=int, default=32)
    parser.add_argument("--pgd-steps", type=int, default=10)
    parser.add_argument("--eps", type=float, default=2.0, help="grey levels (the cost does not depend on it)")
    parser.add_argument("--backbones", default="alexnet", help="comma-separated: alexnet, tiny")
    args = parser.parse_args(argv)

    import torch

    from mrnet.train.attacks import fgsm, pgd
    from mrnet.train.model import MRNet

    threads = torch.get_num_threads()
    print(f"machine: {machine()}; torch {torch.__version__}, {threads} threads; "
          f"load average at start: {load_average()}")
    volume = torch.rand(args.slices, 256, 256, generator=torch.Generator().manual_seed(0)) * 255
    label = 1
    variants = {}
    for backbone in args.backbones.split(","):
        torch.manual_seed(0)
        net = MRNet(backbone).eval().requires_grad_(False).to(memory_format=torch.channels_last)
        loss = (lambda n: lambda volumes: (1 - 2 * label) * n.forward_volume(volumes[0]).sum())(net)

        def clean(net=net):
            with torch.no_grad():
                net.forward_volume(volume)

        def attack_fgsm(net=net, loss=loss):
            (x,) = fgsm(loss, [volume], args.eps)
            with torch.no_grad():
                net.forward_volume(x)

        def attack_pgd(net=net, loss=loss):
            (x,) = pgd(loss, [volume], args.eps, args.pgd_steps, generators=[torch.Generator().manual_seed(1)])
            with torch.no_grad():
                net.forward_volume(x)

        variants[(backbone, "clean forward")] = clean
        variants[(backbone, "FGSM + forward")] = attack_fgsm
        variants[(backbone, f"PGD-{args.pgd_steps} + forward")] = attack_pgd
    for fn in variants.values():
        fn()  # warm-up
    times = {key: [] for key in variants}
    loads = [load_average()]
    for r in range(args.runs):
        for key, fn in variants.items():
            started = time.perf_counter()
            fn()
            times[key].append(time.perf_counter() - started)
        loads.append(load_average())
        log(f"round {r + 1}/{args.runs}: " + ", ".join(f"{b} {k} {t[-1]:.3f}s" for (b, k), t in times.items()))
    median = {key: statistics.median(v) for key, v in times.items()}
    rows = []
    for backbone, kind in variants:
        base = median[(backbone, "clean forward")]
        spread = f"{min(times[(backbone, kind)]):.3f}-{max(times[(backbone, kind)]):.3f}"
        rows.append([f"{backbone} {kind}", f"{median[(backbone, kind)]:.3f}", spread,
                     f"{median[(backbone, kind)] / base:.1f}x"])
    print_table(f"Attack cost per exam and plane model, S = {args.slices} slices of 256 x 256, eps {args.eps:g} grey "
                f"levels, {args.runs} interleaved rounds (medians); load average by round: {' | '.join(loads)}",
                ["what", "median s/exam", "min-max", "vs clean forward"], rows)


if __name__ == "__main__":
    main()
