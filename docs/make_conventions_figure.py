"""Draw docs/conventions.png: how read_exam orients every plane, on a phantom exam and a real one.

Left column: the knee phantom (mrnet.infer.synthetic.phantom), written as a DICOM study and read back with
read_exam. Right column: the shared real knee series (GE, 8-echo oblique sagittal), read with
read_exam. Each panel is the middle slice of a plane; the letters at its edges are the patient
directions that registry.PLANE_AXES puts there. Run from the repository root:

    .venv/bin/python docs/make_conventions_figure.py [--out docs/conventions.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

from mrnet.infer import read_exam  # noqa: E402
from mrnet.infer.reading.geometry import direction_letter  # noqa: E402
from mrnet.infer.synthetic.phantom import PhantomConfig, make_exam  # noqa: E402
from mrnet.infer.registry import PLANE_AXES, PLANES  # noqa: E402
from mrnet.infer.synthetic.scanner_files import write_study  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
REAL_SERIES = REPO.parent / "shared" / "data" / "knee-mese-t2-dicom"


def _edges(plane: str) -> dict[str, str]:
    """The patient direction at each edge of an image of `plane`, and where its slices run."""
    axes = PLANE_AXES[plane]
    down, right, slices = (direction_letter(v) for v in (axes.row, axes.col, axes.slice))
    opposite = {"L": "R", "R": "L", "A": "P", "P": "A", "S": "I", "I": "S"}
    return {"top": opposite[down], "bottom": down, "left": opposite[right], "right": right,
            "slices": f"slices {opposite[slices]} to {slices}"}


def _panel(ax, volume, plane: str, title: str) -> None:
    ax.set_xticks([])
    ax.set_yticks([])
    if volume is None:
        ax.text(0.5, 0.5, f"no {plane} series\nin this exam", ha="center", va="center", fontsize=9,
                transform=ax.transAxes, color="0.4")
        ax.set_facecolor("0.92")
        ax.set_title(title, fontsize=9)
        return
    ax.imshow(volume[volume.shape[0] // 2], cmap="gray", vmin=0, vmax=255, interpolation="nearest")
    edges = _edges(plane)
    style = {"color": "yellow", "fontsize": 10, "fontweight": "bold"}
    ax.text(0.5, 0.98, edges["top"], ha="center", va="top", transform=ax.transAxes, **style)
    ax.text(0.5, 0.02, edges["bottom"], ha="center", va="bottom", transform=ax.transAxes, **style)
    ax.text(0.02, 0.5, edges["left"], ha="left", va="center", transform=ax.transAxes, **style)
    ax.text(0.98, 0.5, edges["right"], ha="right", va="center", transform=ax.transAxes, **style)
    ax.set_title(f"{title}\n{plane}, {volume.shape[0]} slices, {edges['slices']}", fontsize=9)


def main(out: Path) -> Path:
    with tempfile.TemporaryDirectory() as folder:
        volumes, _ = make_exam(seed=3, config=PhantomConfig(slice_range=(24, 24)))
        write_study(volumes, folder)
        phantom = read_exam(folder)
    real = read_exam(REAL_SERIES)

    figure, axes = plt.subplots(len(PLANES), 2, figsize=(5.2, 8.4))
    for row, plane in enumerate(PLANES):
        _panel(axes[row, 0], phantom.volumes.get(plane), plane, "phantom (DICOM round trip)")
        echo = real.sources["sagittal"].echo
        _panel(axes[row, 1], real.volumes.get(plane), plane,
               f"real knee, echo {echo.number} of {echo.echoes}" if plane in real.volumes else "real knee")
    figure.suptitle("read_exam output: middle slice of each plane", fontsize=10)
    figure.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(out, dpi=80)
    plt.close(figure)
    return out


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=REPO / "docs" / "conventions.png")
    print(main(parser.parse_args().out))
