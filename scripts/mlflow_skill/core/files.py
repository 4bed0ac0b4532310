"""Files the skill writes: atomic, never replacing one without --force."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from mlflow_skill.core.errors import UsageError


def write_atomic(path: str | Path, data: str | bytes, force: bool = False) -> Path:
    """Write a file in one step (temp file + rename); refuse to replace one without force."""
    target = Path(path)
    if target.exists() and not force:
        raise UsageError(f"{target} exists: pass --force to overwrite it, or choose another --output")
    if not target.parent.exists():
        raise UsageError(f"folder {target.parent} does not exist: create it or choose another --output")
    if isinstance(data, str):
        data = data.encode("utf-8")  # data is written as it is: never masked
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return target
