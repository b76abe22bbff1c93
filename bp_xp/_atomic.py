"""Atomic file writes: a crash or kill leaves the old file or the new one, never half of one.

Every file bp_xp writes (checkpoints, downloaded data sets) goes through
:func:`atomic_file` (or its one-call form :func:`atomic_write`): the bytes go to a hidden
temporary file in the target's directory, named ``.<name>.<pid>.<random>.tmp``, which is
flushed, fsync'ed and renamed over the target only when the writer finishes without an
exception. A writer that raises (a full disk, a download with the wrong checksum, Ctrl-C)
leaves the target as it was and no temporary file behind.

A process killed with SIGKILL cannot clean up after itself, so the next write of the same
target removes the temporary files whose process no longer exists; those of running
processes, this one included, are kept.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import secrets
import stat
import time
from collections.abc import Callable, Iterator
from typing import IO, Union

__all__ = ["atomic_file", "atomic_write", "check_writable_target", "remove_stale_temporaries"]

logger = logging.getLogger(__name__)

PathLike = Union[str, "os.PathLike[str]"]

_SUFFIX = ".tmp"
# Downloads used to name their temporary files ``.<name>[.<pid>].<random>.part`` (bp_xp 0.1
# had no pid in the name); those left by a killed download are still cleaned up.
_LEGACY_SUFFIX = ".part"
# A legacy temporary file whose name holds no process id is stale after this long.
_STALE_AFTER_S = 24 * 3600.0


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


def _is_stale(candidate: str, owner: str, now: float) -> bool:
    if owner.isdigit():
        return int(owner) != os.getpid() and not _alive(int(owner))
    # No pid: only a legacy download's file is known to be ours; age is all we can judge by.
    return (candidate.endswith(_LEGACY_SUFFIX)
            and now - os.lstat(candidate).st_mtime > _STALE_AFTER_S)


def remove_stale_temporaries(path: PathLike) -> list[str]:
    """Remove the temporary files of earlier writes of ``path`` whose process is gone.

    A temporary file ``.<name>.<pid>.<random>.tmp`` is stale when process ``pid`` no
    longer exists. Files of live processes, this one included, and anything that is not
    a regular file are kept. The ``.part`` files of older downloads are removed on the
    same rule, or, when their name holds no pid (bp_xp 0.1), once they are a day old.

    Returns
    -------
    list of str
        The removed paths.
    """
    prefix = _prefix(os.fspath(path))
    directory, start = os.path.split(prefix)
    removed: list[str] = []
    try:
        names = os.listdir(directory)
    except OSError:
        return removed
    now = time.time()
    for name in names:
        if not (name.startswith(start) and name.endswith((_SUFFIX, _LEGACY_SUFFIX))):
            continue
        candidate = os.path.join(directory, name)
        owner = name[len(start):].split(".", 1)[0]
        try:
            if _is_stale(candidate, owner, now) and stat.S_ISREG(os.lstat(candidate).st_mode):
                os.unlink(candidate)
                removed.append(candidate)
                logger.info("bp_xp: removed stale temporary file %s", candidate)
        except OSError:
            continue  # raced with its owner or another cleaner: not ours to fight over
    return removed


def check_writable_target(path: PathLike) -> None:
    """Refuse a target that exists and is not a regular file (a FIFO, a device, a directory).

    Renaming over such a path would silently replace it with a regular file.
    """
    path = os.fspath(path)
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return
    if stat.S_ISDIR(mode):
        raise IsADirectoryError(errno.EISDIR, "is a directory, not a file to replace", path)
    if not stat.S_ISREG(mode):
        raise OSError(errno.EEXIST, "exists and is not a regular file (a FIFO, socket or "
                      "device); bp_xp replaces only regular files", path)


@contextlib.contextmanager
def atomic_file(path: PathLike) -> Iterator[IO[bytes]]:
    """Open a temporary binary file beside ``path``; rename it over ``path`` on success.

    The body of the ``with`` statement writes the file. If it finishes normally the file
    is flushed, fsync'ed and renamed over ``path``; if it raises (to abort on purpose, or
    because something failed) the temporary file is removed, ``path`` is left as it was,
    and the exception propagates. Errors of the writer itself name ``path``
    (``OSError.filename``), never the temporary file.

    Raises
    ------
    OSError
        When ``path`` exists and is not a regular file, or the directory is not writable.

    Examples
    --------
    >>> import os, tempfile
    >>> from pathlib import Path
    >>> from bp_xp._atomic import atomic_file
    >>> with tempfile.TemporaryDirectory() as d:
    ...     target = os.path.join(d, "out.bin")
    ...     with atomic_file(target) as f:
    ...         _ = f.write(b"complete")
    ...     try:
    ...         with atomic_file(target) as f:
    ...             _ = f.write(b"half")
    ...             raise ValueError("abort")
    ...     except ValueError:
    ...         pass
    ...     Path(target).read_bytes(), os.listdir(d)
    (b'complete', ['out.bin'])
    """
    path = os.fspath(path)
    check_writable_target(path)
    remove_stale_temporaries(path)
    temporary = f"{_prefix(path)}{os.getpid()}.{secrets.token_hex(6)}{_SUFFIX}"
    try:
        # os.open with 0o666 lets the umask decide the mode, as for any new file.
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0),
                     0o666)
    except OSError as exc:
        raise _naming(exc, path) from exc
    try:
        with os.fdopen(fd, "wb") as file:
            yield file
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(exc, OSError) and exc.filename == temporary:
            raise _naming(exc, path) from exc
        raise
    _fsync_directory(os.path.dirname(os.path.abspath(path)))


def _naming(exc: OSError, path: str) -> OSError:
    """``exc`` as it would read had ``path`` itself been opened: the same type, errno, text."""
    return type(exc)(exc.errno, exc.strerror, path)


def atomic_write(path: PathLike, write: Callable[[IO[bytes]], None]) -> None:
    """Call ``write(file)`` on a temporary file and rename it over ``path`` once complete.

    The one-call form of :func:`atomic_file`: if ``write`` raises, nothing is renamed and
    no temporary file is left.
    """
    with atomic_file(path) as file:
        write(file)


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
