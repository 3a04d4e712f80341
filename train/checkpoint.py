"""Atomic writes: a run killed at any moment leaves either the old file or the new one, never half.

torch is imported only by the torch writers, so the text and JSON writers serve torch-free code.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path


def _atomic(path: Path, write) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as stream:
            write(stream)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def save_torch(obj, path: Path) -> None:
    import torch

    _atomic(path, lambda stream: torch.save(obj, stream))


def load_torch(path: Path):
    # Checkpoints hold numpy RNG states and config dictionaries, so weights_only cannot be used;
    # they are files this toolkit wrote itself.
    import torch

    return torch.load(path, map_location="cpu", weights_only=False)


def save_bytes(data: bytes, path: Path) -> None:
    _atomic(path, lambda stream: stream.write(data))


def save_text(text: str, path: Path) -> None:
    _atomic(path, lambda stream: stream.write(text.encode("utf-8")))


def save_json(obj, path: Path) -> None:
    save_text(json.dumps(obj, indent=2, sort_keys=False, default=_jsonable) + "\n", path)


def _jsonable(value):
    if hasattr(value, "item"):
        return value.item()
    if hasattr(value, "tolist"):
        return value.tolist()
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
