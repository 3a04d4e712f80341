"""What a caller hears while training runs: `Hooks`. Every hook is optional; none of them prints,
the CLI turns them into progress bars and tables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable


def _quiet(*args) -> None:
    return None


@dataclass
class Hooks:
    # Per-model epoch and step progress (a `loop.Progress` or None), for models trained in this process.
    progress: Callable = lambda job: None
    model_done: Callable[[dict], None] = _quiet  # a model finished: its summary (done.json)
    announce: Callable[[str], None] = _quiet
    exported: Callable[[str], None] = _quiet  # a bundle model was written
    stage: Callable[[str, int], None] = _quiet  # a stage begins, with the number of models it trains
    run_done: Callable = _quiet  # a run folder is trained and reported (a pipeline.RunResult)
    board: Callable[[int, int, int, int], None] = _quiet  # jobs done, running, failed, of total
    attacked: Callable[[str, int, int], None] = _quiet  # a run under attack: exams done, of total
