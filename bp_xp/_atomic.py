"""Atomic file writes: a crash or kill leaves the old file or the new one, never half of one.

Every file bp_xp writes (checkpoints, downloaded data sets) goes through
:func:`atomic_write`: the bytes go to a hidden temporary file in the target's directory,
named ``.<name>.<pid>.<random>.tmp``, which is flushed, fsync'ed and renamed over the
target. A process killed with SIGKILL cannot clean up after itself, so the next write of
the same target removes temporary files whose process no longer exists.
"""

from __future__ import annotations

import contextlib
import errno
import os
import secrets
import stat
from collections.abc import Callable
from typing import IO

__all__ = ["atomic_write", "check_writable_target", "remove_stale_temporaries"]

_SUFFIX = ".tmp"


def _prefix(path: str) -> str:
    return os.path.join(os.path.dirname(os.path.abspath(path)), f".{os.path.basename(path)}.")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # it exists but is someone else's, or we cannot tell: keep its file
        return True
    return True


def remove_stale_temporaries(path: str) -> list[str]:
    """Remove the temporary files of earlier writes of ``path`` whose process is gone.

    Returns the removed paths. Files of live processes, this one included, are kept.
    """
    prefix = _prefix(path)
    directory, start = os.path.split(prefix)
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    for name in names:
        if not (name.startswith(start) and name.endswith(_SUFFIX)):
            continue
        pid = name[len(start):].split(".", 1)[0]
        if not pid.isdigit() or int(pid) == os.getpid() or _alive(int(pid)):
            continue
        candidate = os.path.join(directory, name)
        with contextlib.suppress(OSError):
            if stat.S_ISREG(os.lstat(candidate).st_mode):
                os.unlink(candidate)
                removed.append(candidate)
    return removed


def check_writable_target(path: str) -> None:
    """Refuse a target that exists and is not a regular file (a FIFO, a device, a directory).

    Renaming over such a path would silently replace it with a regular file.
    """
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file to replace", path)
    if not stat.S_ISREG(mode):
        raise OSError(errno.EEXIST, "exists and is not a regular file (a FIFO, socket or "
                      "device); bp_xp replaces only regular files", path)


def atomic_write(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file and rename it over ``path`` once complete.

    Errors name ``path``, never the temporary file, and leave no temporary file behind.

    Raises
    ------
    OSError
        When ``path`` exists and is not a regular file, or the directory is not writable.
    """
    check_writable_target(path)
    remove_stale_temporaries(path)
    temporary = f"{_prefix(path)}{os.getpid()}.{secrets.token_hex(6)}{_SUFFIX}"
    try:
        # os.open with 0o666 lets the umask decide the mode, as for any new file.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
    except OSError as exc:
        raise type(exc)(exc.errno, f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as file:
            write(file)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(exc, OSError) and exc.filename == temporary:
            raise type(exc)(exc.errno, f"cannot write {path}: {exc.strerror}") from exc
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(path)))


def _fsync_directory(directory: str) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
