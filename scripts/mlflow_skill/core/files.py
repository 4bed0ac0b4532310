"""Files the skill writes: atomic, never replacing one without --force, and a target that cannot
be written (a folder, a read-only or missing folder) refused as a usage error naming the fix."""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from mlflow_skill.core.errors import UsageError


def check_writable(path: str | Path, force: bool = False, flag: str = "--output") -> Path:
    """Refuse, before any work, a target that write_atomic could not write: an existing file
    without force, a folder, a folder that does not exist or does not let us create files."""
    target = Path(path)
    if target.is_dir():
        raise UsageError(f"{flag} {target} is a folder: name a file inside it (e.g. {target / 'out'}.csv)")
    if target.exists() and not force:
        raise UsageError(f"{target} exists: pass --force to overwrite it, or choose another {flag}")
    parent = target.parent
    if not parent.exists():
        raise UsageError(f"folder {parent} does not exist: create it or choose another {flag}")
    if not parent.is_dir():
        raise UsageError(f"{parent} is not a folder: choose another {flag}")
    try:  # the one sure test (permissions, read-only mounts, ACLs): create a file there
        fd, probe = tempfile.mkstemp(prefix=f".{target.name}.", dir=parent)
    except OSError as exc:
        raise cannot_write(target, exc, flag) from None
    os.close(fd)
    with contextlib.suppress(OSError):
        os.unlink(probe)
    return target


def cannot_write(target: Path, exc: OSError, flag: str = "--output") -> UsageError:
    reason = exc.strerror or type(exc).__name__
    return UsageError(f"cannot write {target} ({reason}): choose a {flag} path in a folder you can write to")


def write_atomic(path: str | Path, data: str | bytes, force: bool = False, flag: str = "--output") -> Path:
    """Write a file in one step (temp file + rename); refuse to replace one without force."""
    target = check_writable(path, force, flag)
    if isinstance(data, str):
        data = data.encode("utf-8")  # data is written as it is: never masked
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", dir=target.parent)
    except OSError as exc:
        raise cannot_write(target, exc, flag) from None
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        if isinstance(exc, OSError):
            raise cannot_write(target, exc, flag) from None
        raise
    return target
