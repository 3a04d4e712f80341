"""Inference speed of one exam: torch (mrnet-baseline style) against ONNX Runtime fp32 and int8.

Nine AlexNet-backbone models with random weights (no trained AlexNet run is needed for speed),
exported with `train.export.export_nets` into a temporary bundle and quantised with
`train.quantize.quantize_model` (calibrated on phantom exams; no AUC gate: there are no labels
worth gating on). One exam = three planes of S slices, each run through its three task models.

    .venv/bin/python benchmarks/inference.py [--runs 10] [--slices 32] [--quick] [--workdir DIR]

Prints four tables:
  1. models only, one exam, variants interleaved run by run: median seconds, speed-up against
     torch eager (NCHW, the mrnet-baseline way), achieved GFLOP/s against the FLOP count;
  2. int8 against fp32 agreement on phantom exams not used for calibration (random weights);
  3. ONNX Runtime session variants: one session per model (the Predictor), no spinning threads,
     one global thread pool, and the three task models of a plane merged into one graph;
  4. end to end: `mrnet-predict STUDY --format json` on a DICOM study of the same size (process
     wall time, start-up, reading, models), cold start-up (imports + sessions), peak RSS, and a
     batch of exams to show the read-ahead.
Timings swing between runs on a shared machine: compare ratios within one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from common import load_average, log, machine, print_table

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _exam(seed: int, slices: int) -> dict[str, np.ndarray]:
    from mrnet.infer.synthetic.phantom import PhantomConfig, make_exam

    volumes, _ = make_exam(seed, config=PhantomConfig(slice_range=(slices, slices)))
    return {p: np.ascontiguousarray(v[:slices]) for p, v in volumes.items()}


def _nets(seed: int = 0):
    import torch

    from mrnet.infer.registry import PLANES, TASKS, model_key
    from mrnet.train.model import MRNet

    torch.manual_seed(seed)
    return {model_key(p, t): MRNet("alexnet").eval() for p in PLANES for t in TASKS}


def _build_bundle(workdir: Path, nets, slices: int, calibration_exams: int) -> Path:
    """fp32 bundle from the nets, plus an int8 file per model (ungated) listed in the manifest."""
    from mrnet.infer.bundle import MANIFEST, sha256_file
    from mrnet.train.export import export_nets
    from mrnet.train.quantize import carry_metadata, quantize_model

    bundle = workdir / "bundle"
    if (bundle / MANIFEST).exists():
        log(f"reusing {bundle}")
        return bundle
    started = time.perf_counter()
    export_nets(nets, bundle, on_model=lambda key: log(f"exported {key}"))
    log(f"fp32 bundle in {time.perf_counter() - started:.0f} s")
    manifest = json.loads((bundle / MANIFEST).read_text())
    calibration = [_exam(1000 + k, slices) for k in range(calibration_exams)]
    started = time.perf_counter()
    for key, entry in manifest["models"].items():
        int8 = bundle / f"{key}.int8.onnx"
        quantize_model(bundle / entry["file"], int8, (exam[entry["plane"]] for exam in calibration))
        carry_metadata(bundle / entry["file"], int8, fingerprint="none (benchmark: phantom seeds 1000+)")
        entry["int8"] = {"file": int8.name, "sha256": sha256_file(int8), "precision": "int8"}
        log(f"quantised {key}")
    manifest["quantization"] = {"precision": "int8", "gate": None,
                                "calibration": {"exams": calibration_exams, "source": "phantom seeds 1000+"}}
    (bundle / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    log(f"int8 files in {time.perf_counter() - started:.0f} s")
    return bundle


def _flops_per_slice() -> tuple[float, float]:
    """FLOPs of one slice the mrnet-baseline way (three-channel input), and on the volume path the
    export uses (first convolution on one channel with summed weights)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from mrnet.train.model import MRNet, VolumeModel

    net = MRNet("alexnet").eval()
    exported = VolumeModel(net)  # what export_onnx traces
    counts = []
    for run in (lambda: net(torch.zeros(1, 3, 256, 256)), lambda: exported(torch.zeros(1, 256, 256))):
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            run()
        counts.append(float(counter.get_total_flops()))
    return counts[0], counts[1]


# ---------------------------------------------------------------------------------------------
# The variants: each is a callable that scores one exam (nine model runs)


def _torch_variants(nets, threads: int):
    import torch

    from mrnet.infer.registry import PLANES, TASKS, model_key
    from mrnet.train.model import MRNet, normalise

    torch.set_num_threads(threads)
    channels_last = {}
    for key, net in nets.items():
        twin = MRNet("alexnet").eval()
        twin.load_state_dict(net.state_dict())
        channels_last[key] = twin.to(memory_format=torch.channels_last)

    def eager(volumes):
        # mrnet-baseline: a contiguous (S, 3, 256, 256) float tensor per plane, model(x) per task.
        with torch.inference_mode():
            for plane in PLANES:
                x = normalise(torch.from_numpy(volumes[plane])).contiguous()
                for task in TASKS:
                    nets[model_key(plane, task)](x)

    def eager_cl(volumes):
        with torch.inference_mode():
            for plane in PLANES:
                x = normalise(torch.from_numpy(volumes[plane])).contiguous(memory_format=torch.channels_last)
                for task in TASKS:
                    channels_last[model_key(plane, task)](x)

    return {"torch eager (NCHW)": eager, "torch channels_last": eager_cl}


def _session_options(threads: int, spinning: bool = True, global_pool: bool = False):
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.log_severity_level = 3
    if global_pool:
        options.use_per_session_threads = False
    else:
        options.intra_op_num_threads = threads
        if not spinning:
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def _merged_plane_model(paths: dict[str, Path]):
    """The three task models of a plane in one graph: one input, six outputs `<task>/logit`, `<task>/cam`."""
    import onnx
    from onnx import compose

    graphs, first = [], None
    for task, path in paths.items():
        model = compose.add_prefix(onnx.load(str(path)), prefix=f"{task}/")
        first = first or model
        for node in model.graph.node:
            for k, name in enumerate(node.input):
                if name == f"{task}/volume":
                    node.input[k] = "volume"
        graphs.append(model.graph)
    volume = onnx.helper.make_tensor_value_info("volume", onnx.TensorProto.UINT8, ["slices", 256, 256])
    graph = onnx.helper.make_graph([n for g in graphs for n in g.node], "plane", [volume],
                                   [o for g in graphs for o in g.output],
                                   initializer=[i for g in graphs for i in g.initializer],
                                   value_info=[v for g in graphs for v in g.value_info])
    merged = onnx.helper.make_model(graph, opset_imports=first.opset_import, ir_version=first.ir_version)
    onnx.checker.check_model(merged)
    return merged


def _ort_variants(bundle: Path, threads: int, workdir: Path):
    import onnxruntime as ort

    from mrnet.infer.bundle import load_bundle
    from mrnet.infer.predictor import Predictor
    from mrnet.infer.registry import PLANES, TASKS, model_key

    variants, sessions = {}, {}
    for precision in ("fp32", "int8"):
        predictor = Predictor(bundle, device="cpu", precision=precision, threads=threads)
        assert predictor.precision == precision and predictor.provider == "CPUExecutionProvider"
        variants[f"ORT {precision} (Predictor)"] = predictor.predict
    extra = {}
    models = load_bundle(bundle, precision="int8").models
    for name, options in (("int8, no spinning", _session_options(threads, spinning=False)),):
        sessions[name] = {k: ort.InferenceSession(str(m.path), options, providers=["CPUExecutionProvider"])
                          for k, m in models.items()}

        def run(volumes, chosen=sessions[name]):
            for plane in PLANES:
                for task in TASKS:
                    chosen[model_key(plane, task)].run(["logit", "cam"], {"volume": volumes[plane]})
        extra[f"ORT {name}"] = run
    merged = {}
    for plane in PLANES:
        path = workdir / f"merged-{plane}.int8.onnx"
        if not path.exists():
            import onnx

            onnx.save(_merged_plane_model({t: models[model_key(plane, t)].path for t in TASKS}), str(path))
        merged[plane] = ort.InferenceSession(str(path), _session_options(threads), providers=["CPUExecutionProvider"])

    def run_merged(volumes):
        for plane in PLANES:
            merged[plane].run(None, {"volume": volumes[plane]})
    extra["ORT int8, plane graphs merged"] = run_merged
    return variants, extra


def _pool_worker(mode: str, bundle: Path, exam: Path, runs: int, threads: int) -> None:
    """In a fresh process: time the nine int8 sessions with per-session pools or one global pool.
    (Once ORT has a global pool every session in the process must use it, hence a process each.)"""
    import onnxruntime as ort

    from mrnet.infer.bundle import load_bundle

    if mode == "global-pool":
        ort.capi._pybind_state.set_global_thread_pool_sizes(threads, 1)
    options = _session_options(threads, spinning=mode != "per-session-no-spin", global_pool=mode == "global-pool")
    models = load_bundle(bundle, precision="int8").models
    sessions = {k: ort.InferenceSession(str(m.path), options, providers=["CPUExecutionProvider"])
                for k, m in models.items()}
    volumes = dict(np.load(exam))
    times = []
    for r in range(runs + 1):
        started = time.perf_counter()
        for key, model in models.items():
            sessions[key].run(["logit", "cam"], {"volume": volumes[model.plane]})
        if r:  # the first run is a warm-up
            times.append(time.perf_counter() - started)
    print(json.dumps(times))


def _pools(bundle: Path, volumes, workdir: Path, runs: int, threads: int) -> dict[str, list[float]]:
    exam = workdir / "exam.npz"
    np.savez(exam, **volumes)
    times = {"per-session": [], "per-session-no-spin": [], "global-pool": []}
    for _ in range(max(2, runs // 2)):
        for mode in times:
            _, _, text = _timed_process([sys.executable, __file__, "--worker", mode, "--bundle", str(bundle),
                                         "--exam", str(exam), "--runs", "2", "--threads", str(threads)])
            times[mode] += json.loads(text)
    return times


def _interleaved(variants: dict, volumes, runs: int) -> dict[str, list[float]]:
    times = {name: [] for name in variants}
    for fn in variants.values():  # warm-up: first-run allocations, lazy kernels
        fn(volumes)
    for r in range(runs):
        for name, fn in variants.items():
            started = time.perf_counter()
            fn(volumes)
            times[name].append(time.perf_counter() - started)
        log(f"run {r + 1}/{runs}: " + ", ".join(f"{n} {t[-1]:.2f}s" for n, t in times.items()))
    return times


# ---------------------------------------------------------------------------------------------
# End to end, in subprocesses


def _peak_rss_kib(pid: int) -> int:
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return 0
    return next((int(line.split()[1]) for line in status.splitlines() if line.startswith("VmHWM:")), 0)


def _timed_process(command: list[str]) -> tuple[float, int, str]:
    """Wall seconds, peak RSS (KiB) and stdout of a child process.

    The peak is the child's own VmHWM, polled until it exits (it only grows). Not ru_maxrss from
    wait4: Linux seeds a child's ru_maxrss with the RSS of the process it was forked from, which
    here is this benchmark with nine AlexNets loaded twice over.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        started = time.perf_counter()
        process = subprocess.Popen(command, stdout=out, stderr=err, cwd=REPO)
        peak = 0
        while process.poll() is None:
            peak = max(peak, _peak_rss_kib(process.pid))
            time.sleep(0.02)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        text = out.read().decode()
        if process.returncode != 0:
            raise RuntimeError(f"{command[0]} failed ({process.returncode}): {err.read().decode()[-2000:]}")
        return wall, peak, text


COLD_START = """
import sys, time
started = time.perf_counter()
from mrnet.infer.predictor import Predictor
imported = time.perf_counter()
predictor = Predictor(sys.argv[1], device="cpu", precision=sys.argv[2])
ready = time.perf_counter()
print(imported - started, ready - imported, "torch" in sys.modules)
"""


def _end_to_end(bundle: Path, study: Path, repeats: int, batch: int) -> list[list[str]]:
    rows = []
    for precision in ("fp32", "int8"):
        walls, rss, startup, reads, models, totals = [], [], [], [], [], []
        for _ in range(repeats):
            wall, peak, text = _timed_process([str(BIN / "mrnet-predict"), str(study), "--models", str(bundle),
                                               "--format", "json", "--device", "cpu", "--precision", precision,
                                               "--no-progress"])
            doc = json.loads(text)
            assert doc["precision"] == precision, doc["precision"]
            exam = doc["exams"][0]
            walls.append(wall)
            rss.append(peak / 1024)
            startup.append(doc["startup_s"])
            reads.append(exam["timings_s"]["read_wait"])
            models.append(exam["timings_s"]["models_total"])
            totals.append(doc["total_s"])
        cold = [_timed_process([sys.executable, "-c", COLD_START, str(bundle), precision]) for _ in range(repeats)]
        imports = [float(t.split()[0]) for _, _, t in cold]
        sessions = [float(t.split()[1]) for _, _, t in cold]
        torch_loaded = any(t.split()[2] == "True" for _, _, t in cold)
        m = statistics.median
        rows.append([f"mrnet-predict {precision}", f"{m(walls):.2f}", f"{m(startup):.2f}", f"{m(reads):.2f}",
                     f"{m(models):.2f}", f"{m(totals) - m(startup):.2f}",
                     f"{(m(totals) - m(startup)) / m(models):.2f}x", f"{m(rss):.0f}"])
        rows.append([f"cold start {precision} (imports + sessions)", f"{m(w for w, _, _ in cold):.2f}",
                     f"{m(imports):.2f} + {m(sessions):.2f}", "", "", "", "torch imported" if torch_loaded else "no torch",
                     f"{m(p / 1024 for _, p, _ in cold):.0f}"])
        # A batch: the same study given `batch` times; exams after the first are read while the
        # previous one is scored, so their read_wait should be near zero.
        wall, peak, text = _timed_process([str(BIN / "mrnet-predict"), *[str(study)] * batch, "--models",
                                           str(bundle), "--format", "json", "--device", "cpu", "--precision",
                                           precision, "--no-progress"])
        doc = json.loads(text)
        waits = [e["timings_s"]["read_wait"] for e in doc["exams"]]
        model_times = [e["timings_s"]["models_total"] for e in doc["exams"]]
        per_exam = (doc["total_s"] - doc["startup_s"]) / batch
        rows.append([f"batch of {batch} {precision}", f"{wall:.2f}", f"{doc['startup_s']:.2f}",
                     f"{waits[0]:.2f} then {max(waits[1:]):.2f}", f"{statistics.mean(model_times):.2f}",
                     f"{per_exam:.2f}/exam", f"{per_exam / statistics.mean(model_times):.2f}x", f"{peak / 1024:.0f}"])
    return rows


def _read_time(study: Path, repeats: int) -> float:
    from mrnet.infer.reading import read_exam

    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        read_exam(study)
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=10, help="timed runs per variant (median reported)")
    parser.add_argument("--slices", type=int, default=32, help="slices per plane")
    parser.add_argument("--quick", action="store_true", help="3 runs, fewer end-to-end repeats")
    parser.add_argument("--threads", type=int, default=None, help="intra-op threads (default: physical cores)")
    parser.add_argument("--calibration-exams", type=int, default=4, help="phantom exams to calibrate int8 on")
    parser.add_argument("--workdir", type=Path, default=None, help="keep the bundle here and reuse it next time")
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--worker", choices=("per-session", "per-session-no-spin", "global-pool"), help=argparse.SUPPRESS)
    parser.add_argument("--bundle", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--exam", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    runs = 3 if args.quick else args.runs
    repeats = 2 if args.quick else 5
    batch = 2 if args.quick else 4

    from mrnet.infer.runtime import physical_cores

    threads = args.threads or physical_cores()
    if args.worker:
        return _pool_worker(args.worker, args.bundle, args.exam, runs, threads)

    import onnxruntime as ort

    from mrnet.infer.registry import PLANES
    scratch = tempfile.TemporaryDirectory(prefix="mrnet-bench-") if args.workdir is None else None
    workdir = args.workdir or Path(scratch.name)
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"machine: {machine()}")
    print(f"load average at start: {load_average()}; threads: {threads}; onnxruntime {ort.__version__} "
          f"{ort.get_available_providers()}; python {platform.python_version()}")

    nets = _nets()
    bundle = _build_bundle(workdir, nets, args.slices, args.calibration_exams)
    volumes = _exam(7, args.slices)
    baseline_flops, volume_flops = (f * args.slices * len(PLANES) * 3 for f in _flops_per_slice())

    variants = _torch_variants(nets, threads)
    ort_main, ort_extra = _ort_variants(bundle, threads, workdir)
    variants.update(ort_main)
    log("timing the models")
    times = _interleaved(variants, volumes, runs)
    load_models = load_average()
    base = statistics.median(times["torch eager (NCHW)"])
    rows = []
    for name, values in times.items():
        median = statistics.median(values)
        flops = baseline_flops if name.startswith("torch") else volume_flops
        rows.append([name, f"{median:.2f}", f"{min(values):.2f}", f"{max(values):.2f}", f"{base / median:.2f}x",
                     f"{flops / median / 1e9:.1f}"])
    print_table(f"1. One exam, models only: 3 planes x {args.slices} slices x 3 tasks, AlexNet, {threads} threads, "
           f"{runs} interleaved runs; FLOPs per exam (FlopCounterMode): {baseline_flops / 1e9:.0f} G in "
           f"mrnet-baseline style, {volume_flops / 1e9:.0f} G on the exported volume path (first convolution "
           f"on one channel); GFLOP/s of each variant's own count; load average {load_models}",
           ["variant", "median s", "min s", "max s", "vs torch eager", "GFLOP/s"], rows)

    # 2. int8 against fp32 on exams not used for calibration (random weights: agreement, not accuracy).
    from mrnet.infer.predictor import Predictor
    from mrnet.train.quantize import discordance

    fp32, int8 = (Predictor(bundle, device="cpu", precision=p, threads=threads) for p in ("fp32", "int8"))
    checks = [_exam(2000 + k, args.slices) for k in range(4 if args.quick else 8)]
    logits = {"fp32": [], "int8": []}
    cam_diff, cam_scale = 0.0, 0.0
    for exam in checks:
        for name, predictor in (("fp32", fp32), ("int8", int8)):
            result = predictor.predict(exam)
            logits[name].append([np.log(p / (1 - p)) for plane in PLANES for p in result.plane_probabilities[plane].values()])
            if name == "fp32":
                cams32 = result.cams
            else:
                for plane in PLANES:
                    for task, cam in result.cams[plane].items():
                        cam_diff = max(cam_diff, float(np.abs(cam - cams32[plane][task]).max()))
                        cam_scale = max(cam_scale, float(np.abs(cams32[plane][task]).max()))
    a, b = np.asarray(logits["fp32"]), np.asarray(logits["int8"])
    correlations = [np.corrcoef(a[:, k], b[:, k])[0, 1] for k in range(a.shape[1])]
    print_table(f"2. int8 vs fp32 agreement, {len(checks)} phantom exams x 9 models (random AlexNet weights)",
           ["measure", "value"],
           [["logit correlation per model, min / median", f"{min(correlations):.4f} / {np.median(correlations):.4f}"],
            ["logit max |int8 - fp32|", f"{np.abs(a - b).max():.4g}"],
            ["fp32 logit spread (std over exams, median model)", f"{np.median(a.std(axis=0)):.4g}"],
            ["exam pairs reordered (all models)", f"{np.mean([discordance(a[:, k], b[:, k]) for k in range(a.shape[1])]):.3f}"],
            ["CAM max |int8 - fp32| / max |CAM|", f"{cam_diff / max(cam_scale, 1e-12):.4f}"]])

    log("timing session variants")
    extra = {"ORT int8 (Predictor)": ort_main["ORT int8 (Predictor)"], **ort_extra}
    times = _interleaved(extra, volumes, runs)
    base = statistics.median(times["ORT int8 (Predictor)"])
    rows = [[name, f"{statistics.median(v):.2f}", f"{min(v):.2f}", f"{base / statistics.median(v):.2f}x"]
            for name, v in times.items()]
    del variants, ort_main, ort_extra, extra, fp32, int8
    if not args.quick:
        log("timing thread pools (a process each)")
        pools = _pools(bundle, volumes, workdir, runs, threads)
        base = statistics.median(pools["per-session"])
        rows += [[f"ORT int8, {name} threads (own process)", f"{statistics.median(v):.2f}", f"{min(v):.2f}",
                  f"{base / statistics.median(v):.2f}x vs per-session"] for name, v in pools.items()]
    print_table(f"3. ONNX Runtime session variants (int8), {runs} interleaved runs; load average {load_average()}",
           ["variant", "median s", "min s", "vs Predictor"], rows)

    if not args.skip_end_to_end:
        from mrnet.infer.synthetic.scanner_files import Study, write_study

        study = workdir / "study"
        if not study.exists():
            write_study(volumes, study, Study(seed=7))
        read_s = _read_time(study, repeats)
        log("end to end")
        rows = _end_to_end(bundle, study, repeats, batch)
        print_table(f"4. End to end on a DICOM study (3 series x {args.slices} slices), median of {repeats}; "
               f"read_exam alone {read_s:.2f} s; load average {load_average()}",
               ["what", "wall s", "start-up s", "read s", "models s", "exam s", "exam/models", "peak RSS MiB"], rows)
    print(f"\nload average at end: {load_average()}")
    if scratch is not None:
        scratch.cleanup()


if __name__ == "__main__":
    main()
