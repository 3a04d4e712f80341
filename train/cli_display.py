"""What `mrnet-train` shows while and after it works: progress bars fed by the library's `Hooks`,
and the summary tables. Only the CLI imports this module."""

from __future__ import annotations

from pathlib import Path

from rich.console import Console
from rich.table import Table

out = Console(highlight=False, soft_wrap=True)


class TrainingProgress:
    """Rich progress bars: one bar per model (epoch, loss, AUC, ETA) when models train one at a time
    in this process, else one bar over the models of each stage."""

    def __init__(self, quiet: bool, jobs: int = 1):
        from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

        self.quiet, self.jobs = quiet, jobs
        self.bars = Progress(TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[status]}"),
                             TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(), console=out,
                             disable=quiet)
        self.stage_bar = None
        self.attack_bars: dict[str, object] = {}  # run -> its bar while its exams are attacked

    def __enter__(self):
        self.bars.__enter__()
        return self

    def __exit__(self, *exc):
        return self.bars.__exit__(*exc)

    def hooks(self):
        from mrnet.train.pipeline import Hooks

        return Hooks(progress=self.for_job if self.jobs <= 1 else (lambda job: None), model_done=self.model_done,
                     announce=self.say, exported=self.exported, stage=self.stage, run_done=self.run_done,
                     board=self.board, attacked=self.attacked)

    def for_job(self, job):
        from mrnet.train.loop import Progress

        bar = self.bars.add_task(f"{job.key:<18} epoch 1/{job.epochs}", total=job.epochs, status="")
        state = {"epoch": 0, "auc": ""}

        def on_step(done, total, loss):
            self.bars.update(bar, completed=state["epoch"] + done / max(total, 1),
                             status=f"loss {loss:.4f} {state['auc']}")

        def on_epoch(record, epochs):
            state["epoch"] = record.epoch
            state["auc"] = f"tune AUC {record.tune_auc:.3f}"
            self.bars.update(bar, completed=record.epoch,
                             description=f"{job.key:<18} epoch {min(record.epoch + 1, epochs)}/{epochs}",
                             status=f"loss {record.train_loss:.4f} {state['auc']}")

        return Progress(on_step=on_step, on_epoch=on_epoch, announce=self.say)

    def say(self, message: str) -> None:
        if not self.quiet:
            self.bars.console.print(message, markup=False)

    def stage(self, name: str, models: int) -> None:
        self.stage_bar = None
        if name == "robustness":  # bars per run come with `attacked`, in this process only
            if self.jobs > 1:
                self.say(f"attacking {models} runs, {min(models, self.jobs)} at once")
            return
        if name == "export" or self.jobs > 1:
            label = "export" if name == "export" else "models"
            self.stage_bar = self.bars.add_task(f"{label:<18}", total=models, status="")

    def model_done(self, summary: dict) -> None:
        if self.stage_bar is not None:
            self.bars.update(self.stage_bar, advance=1,
                             status=f"{summary['model']} valid AUC {summary['valid']['auc']:.3f}")

    def attacked(self, run: str, done: int, total: int) -> None:
        """One bar per run under attack (the runs are scored in this process only with --jobs 1)."""
        if run not in self.attack_bars:
            self.attack_bars[run] = self.bars.add_task(f"{'attack ' + Path(run).name:<18}", total=total,
                                                       status="exams")
        self.bars.update(self.attack_bars[run], completed=done)

    def board(self, done: int, running: int, failed: int, total: int) -> None:
        if self.stage_bar is not None:
            self.bars.update(self.stage_bar, completed=done + failed,
                             status=f"done {done} · running {running} · failed {failed} of {total}")

    def exported(self, key: str) -> None:
        if self.stage_bar is not None:
            self.bars.update(self.stage_bar, advance=1, status=key)

    def run_done(self, result) -> None:
        if not self.quiet:
            print_summary_table(result.summaries, f"{result.summaries[0]['mode'] if result.summaries else ''} "
                                                   f"run {result.folder}")
        out.print(f"report: {result.report}")


def print_summary_table(summaries: list[dict], title: str) -> None:
    table = Table(title=title)
    for column in ("model", "epoch", "tune AUC", "valid AUC", "acc", "sens", "spec"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for s in summaries:
        v = s["valid"]
        table.add_row(s["model"], str(s["selected_epoch"]), f"{s['tune']['auc']:.3f}", f"{v['auc']:.3f}",
                      f"{v['accuracy']:.3f}", f"{v['sensitivity']:.3f}", f"{v['specificity']:.3f}")
    out.print(table)


def print_table2_headline(table2_csv: Path) -> None:
    """Table 2's AUC rows of the leaderboard metric and the mean of the models, mean ± sd over seeds."""
    import csv
    import math

    with open(table2_csv, newline="") as stream:
        rows = [r for r in csv.DictReader(stream) if r["metric"] == "auc" and r["model"] in ("leaderboard", "mean")]
    columns = sorted({(float(r["eps"]), float(r["retrain_pct"])) for r in rows})
    several = any(r["seeds"] not in ("", "1") for r in rows)
    table = Table(title="valid AUC (Table 2)" + (" — mean ± sd over seeds" if several else ""))
    table.add_column("")
    table.add_column("row")
    for eps, pct in columns:
        table.add_column(f"eps {eps:g}, {pct:g} %", justify="right")
    for model in ("leaderboard", "mean"):
        for label in ("baseline", "baseline + advtrain"):
            cells = []
            for eps, pct in columns:
                match = [r for r in rows if (r["model"], r["row"]) == (model, label)
                         and (float(r["eps"]), float(r["retrain_pct"])) == (eps, pct)]
                value = float(match[0]["value"]) if match else math.nan
                sd = float(match[0]["sd"] or "nan") if match else math.nan
                spread = "" if math.isnan(sd) else f" ± {sd:.3f}"
                cells.append("–" if math.isnan(value) else f"{value:.3f}{spread}")
            table.add_row(model, label, *cells)
    out.print(table)


def print_robustness_table(robustness_csv: Path, settings, split: str) -> None:
    """The fused tasks' AUC under attack, per run and attack, against eps."""
    import csv

    with open(robustness_csv, newline="") as stream:
        rows = [r for r in csv.DictReader(stream) if r["model"].startswith("fused-")]
    table = Table(title=f"fused AUC under attack ({split} split, eps in grey levels). Not for clinical use.")
    for column in ("model", "run", "attack", *(f"eps {e:g}" for e in settings.eps)):
        table.add_column(column, justify="left" if not column.startswith("eps") else "right")
    cells: dict[tuple, dict] = {}
    for r in rows:
        cells.setdefault((r["model"], r["run"], r["attack"]), {})[float(r["eps"])] = r["auc"]
    for (model, run, name), by_eps in cells.items():
        table.add_row(model, run, name, *(f"{float(by_eps[e]):.3f}" if by_eps.get(e) not in (None, "nan") else "–"
                                          for e in settings.eps))
    out.print(table)
