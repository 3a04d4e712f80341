"""A whole phantom data set in the MRNet-v1.0 layout, plus `phantom.json` with every exam's findings
and lesion boxes. Exams render in parallel processes; the result depends on the seed only.
"""

from __future__ import annotations

import json
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict
from pathlib import Path

import numpy as np

from ..registry import PLANES, TASKS
from .phantom import SEQUENCES, PhantomConfig, draw_exam, draw_labels, render_exam


def _write_exam(job) -> tuple[str, dict]:
    out, split, spec, config = job
    volumes, record = render_exam(spec, config)
    for plane, volume in volumes.items():
        np.save(Path(out) / split / plane / f"{spec.exam_id}.npy", volume)
    record["split"] = split
    return spec.exam_id, record


def write_dataset(out: str | Path, n_train: int, n_valid: int, seed: int = 0,
                  config: PhantomConfig | None = None, workers: int | None = None,
                  progress=None) -> dict:
    """Write a phantom data set in the MRNet-v1.0 layout, plus `phantom.json` with the lesion boxes.

    Ids run from 0000 for train and continue for valid, as in MRNet. The result depends on
    `seed` only, not on the number of workers.
    """
    config = config or PhantomConfig()
    out = Path(out)
    rng = np.random.default_rng(seed)
    jobs = []
    next_id = 0
    label_rows: dict[str, list[tuple[str, dict]]] = {}
    for split, count in (("train", n_train), ("valid", n_valid)):
        for plane in PLANES:
            (out / split / plane).mkdir(parents=True, exist_ok=True)
        rows = []
        for labels in draw_labels(count, config.prevalence, rng):
            exam_id = f"{next_id:04d}"
            next_id += 1
            rows.append((exam_id, labels))
            jobs.append((str(out), split, draw_exam(exam_id, labels, config, int(rng.integers(2**31))), config))
        label_rows[split] = rows
        for task in TASKS:
            text = "".join(f"{exam_id},{labels[task]}\n" for exam_id, labels in rows)
            (out / f"{split}-{task}.csv").write_text(text)

    workers = workers or min(len(jobs), os.cpu_count() or 1) or 1
    records = {}
    if workers == 1:
        results = map(_write_exam, jobs)
    else:
        pool = ProcessPoolExecutor(max_workers=workers)
        results = pool.map(_write_exam, jobs, chunksize=4)
    for exam_id, record in results:
        records[exam_id] = record
        if progress:
            progress()
    if workers != 1:
        pool.shutdown()
    manifest = {
        "generator": "mrnet-toolkit knee phantom",
        "synthetic": True,
        "seed": seed,
        "config": asdict(config),
        "sequences": SEQUENCES,
        "box_format": "slices: [first, last]; box: [row_min, col_min, row_max, col_max], inclusive",
        "exams": dict(sorted(records.items())),
    }
    (out / "phantom.json").write_text(json.dumps(manifest, indent=1))
    return manifest
