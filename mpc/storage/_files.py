"""Private files and folders: what holds a secret is created 0600 (files) / 0700 (folders),
whatever the process umask (``docs/operations.md``, Key management)."""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["private_dirs", "create_private_file"]

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


def private_dirs(path: str | os.PathLike[str]) -> Path:
    """Create ``path`` and every missing parent with mode 0700 (existing folders are left as
    they are, except ``path`` itself, which is tightened to 0700 if others could enter it)."""
    folder = Path(path)
    missing = []
    probe = folder
    while not probe.exists():
        missing.append(probe)
        if probe.parent == probe:
            break
        probe = probe.parent
    for created in reversed(missing):
        try:
            created.mkdir(mode=0o700)
        except FileExistsError:  # made concurrently by someone else: fine, checked below
            continue
        os.chmod(created, 0o700)  # mkdir's mode is cut by the umask; set it exactly
    if folder.stat().st_mode & 0o077:
        os.chmod(folder, 0o700)
    return folder


def create_private_file(path: str | os.PathLike[str], content: bytes = b"", *, exclusive: bool = True) -> bool:
    """Create ``path`` with mode 0600 (exactly, whatever the umask), write ``content`` and fsync.

    ``exclusive``: an existing file raises ``FileExistsError``; otherwise an existing file is
    left untouched and False is returned. Symbolic links are never followed."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        if exclusive:
            raise
        return False
    try:
        os.fchmod(fd, 0o600)
        view = memoryview(content)
        while view:
            view = view[os.write(fd, view):]
        os.fsync(fd)
    finally:
        os.close(fd)
    return True
