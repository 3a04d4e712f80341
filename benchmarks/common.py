"""What every benchmark script prints around its tables: the machine, the load, progress, tables.

The scripts run as `python benchmarks/NAME.py`, so this folder is on `sys.path` and they import
this module as `common`.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from pathlib import Path


def log(message: str) -> None:
    """A time-stamped progress line on stderr (stdout keeps only the tables)."""
    print(f"[{time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


def load_average() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def machine() -> str:
    """CPU model, the vector and integer dot-product extensions int8 speed depends on, cores, memory."""
    import psutil

    cpuinfo = Path("/proc/cpuinfo").read_text() if Path("/proc/cpuinfo").exists() else ""
    cpu = next((line.split(":", 1)[1].strip() for line in cpuinfo.splitlines() if line.startswith("model name")),
               platform.processor() or "?")
    isa = "+".join(f for f in ("avx2", "avx512f", "avx512_vnni", "avx_vnni", "amx_int8") if f" {f}" in cpuinfo)
    return (f"{cpu} ({isa or 'no AVX2'}), {psutil.cpu_count(logical=False)} physical cores, "
            f"{psutil.virtual_memory().total / 2**30:.0f} GiB, {platform.system()} {platform.release()}")


def print_table(title: str, header: list[str], rows: list[list]) -> None:
    """A plain-text table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(x)) for x in column) for column in zip(header, *rows)]

    def line(cells) -> str:
        return "  ".join(str(c).ljust(w) if k == 0 else str(c).rjust(w) for k, (c, w) in enumerate(zip(cells, widths)))

    print(f"\n{title}")
    print(line(header))
    print("-" * len(line(header)))
    for row in rows:
        print(line(row))
