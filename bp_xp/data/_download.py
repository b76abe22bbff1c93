"""Cache directory and checksum-verified, atomic downloads (urllib only).

Datasets are stored in a per-user cache directory (see :func:`data_root`).
A file is streamed into a temporary file *in the destination directory*
through bp_xp's one atomic writer (:func:`bp_xp._atomic.atomic_file`, the
one checkpoints use), hashed while it is written, checked against its
expected SHA-256 and its announced ``Content-Length``, and only then renamed
into place.  So a final file name either does not exist or holds the
complete, verified file: an interrupted download, a full disk, a bad mirror
or Ctrl-C leaves nothing behind (the temporary file is removed on every
failure path).  A temporary file left by a process that was killed outright
(``kill -9``, power loss) carries that process's id in its name and is removed
by the next download of the same file.

Downloads are bounded: when the file's size is known the transfer stops one
byte past it (a mirror that never stops sending is cut off), and a mirror that
announces a larger ``Content-Length`` is skipped before anything is read.
Without a known size, :data:`DOWNLOAD_MAX_BYTES` is the cap.

Only the standard library is used (:mod:`urllib.request`), so no extra
dependency is needed to download.
"""

from __future__ import annotations

import hashlib
import http.client
import logging
import os
import socket
import urllib.error
import urllib.request
from collections.abc import Sequence
from pathlib import Path
from typing import IO, Union

from .._atomic import atomic_file
from ._errors import ChecksumError, DatasetError, DownloadError

__all__ = [
    "DATA_DIR_ENV",
    "DOWNLOAD_MAX_BYTES",
    "data_root",
    "sha256_file",
    "download_file",
    "verify_file",
]

logger = logging.getLogger("bp_xp.data")

PathLike = Union[str, "os.PathLike[str]"]

#: Environment variable that overrides the default cache root.
DATA_DIR_ENV = "BP_XP_DATA_DIR"

#: Most bytes a download of a file of unknown size may write (1 GiB).
DOWNLOAD_MAX_BYTES = 1 << 30

_CHUNK = 1 << 16
_USER_AGENT = "bp_xp-data/1 (+python-urllib)"
# What a mirror may fail with: no answer, an HTTP error, a broken transfer, a malformed URL.
_MIRROR_ERRORS = (urllib.error.URLError, http.client.HTTPException, OSError, ValueError)


class _MirrorFailed(Exception):
    """This mirror did not deliver the file; the next one may."""

    def __init__(self, reason: str, *, network: bool = False, digest: str | None = None):
        super().__init__(reason)
        self.reason = reason
        self.network = network  # no server answered (offline-looking)
        self.digest = digest  # set when the file arrived with the wrong SHA-256


def _mirror_failed(exc: BaseException) -> _MirrorFailed:
    if isinstance(exc, urllib.error.HTTPError):
        exc.close()  # release the error response's socket now
    return _MirrorFailed(_reason(exc), network=_is_network_failure(exc))


def data_root(data_dir: PathLike | None = None) -> Path:
    """Return the root directory under which datasets are cached.

    Resolution order: the ``data_dir`` argument, else the environment variable
    ``BP_XP_DATA_DIR``, else ``$XDG_CACHE_HOME/bp_xp``, else
    ``~/.cache/bp_xp``.  Each dataset uses a sub-directory of this root (MNIST:
    ``<root>/mnist``).  Nothing is created here.

    Parameters
    ----------
    data_dir : str or os.PathLike, optional
        Explicit root; wins over everything else.

    Returns
    -------
    pathlib.Path
        The (user-expanded) root directory.

    Examples
    --------
    >>> from bp_xp.data import data_root
    >>> data_root("/tmp/my-data").as_posix()
    '/tmp/my-data'
    """
    if data_dir is not None:
        return Path(data_dir).expanduser()
    env = os.environ.get(DATA_DIR_ENV)
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    if xdg:
        return Path(xdg).expanduser() / "bp_xp"
    return Path.home() / ".cache" / "bp_xp"


def sha256_file(path: PathLike) -> str:
    """Return the hexadecimal SHA-256 digest of a file, read in chunks.

    Examples
    --------
    >>> import tempfile
    >>> from pathlib import Path
    >>> from bp_xp.data import sha256_file
    >>> with tempfile.TemporaryDirectory() as d:
    ...     p = Path(d) / "f"
    ...     _ = p.write_bytes(b"abc")
    ...     sha256_file(p)[:16]
    'ba7816bf8f01cfea'
    """
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def verify_file(path: PathLike, expected_sha256: str, *, what: str = "cached file") -> None:
    """Check an existing file against its expected SHA-256 digest.

    Parameters
    ----------
    path : str or os.PathLike
        The file to check.
    expected_sha256 : str
        Expected hexadecimal digest (case-insensitive).
    what : str, optional
        Word used in the error message ("cached file", "downloaded file").

    Raises
    ------
    ChecksumError
        If the digest differs.  The file is left untouched: it may be a file
        the user placed there by hand, so deleting it is the user's call.
    """
    path = Path(path)
    actual = sha256_file(path)
    expected = expected_sha256.lower()
    if actual != expected:
        raise ChecksumError(
            f"{what} {path} is corrupt or not the expected file: SHA-256 is {actual}, "
            f"expected {expected}. Delete it to download it again, or replace it "
            "with a good copy.",
            filename=path.name,
            expected=expected,
            actual=actual,
        )


def _is_network_failure(exc: BaseException) -> bool:
    """True for failures where no server answered (offline-looking)."""
    if isinstance(exc, urllib.error.HTTPError):
        return False
    if isinstance(exc, urllib.error.URLError):
        return True
    return isinstance(exc, (socket.timeout, TimeoutError, ConnectionError, socket.gaierror))


def _stream(url: str, out: IO[bytes], timeout: float, max_bytes: int) -> str:
    """Stream ``url`` into ``out``, at most ``max_bytes``; return the SHA-256 of what came.

    A failure of the mirror raises :class:`_MirrorFailed`; a failure to write ``out``
    propagates as the :class:`OSError` it is (a local problem no other mirror can fix).
    """
    h = hashlib.sha256()
    received = 0
    request = urllib.request.Request(url, headers={"User-Agent": _USER_AGENT})
    try:
        resp = urllib.request.urlopen(request, timeout=timeout)
    except _MIRROR_ERRORS as exc:
        raise _mirror_failed(exc) from exc
    with resp:
        length_header = resp.headers.get("Content-Length")
        expected_len = int(length_header) if length_header and length_header.isdigit() else None
        if expected_len is not None and expected_len > max_bytes:
            raise _MirrorFailed(
                f"server announces {expected_len} bytes, more than the {max_bytes} "
                "expected; not downloaded"
            )
        while True:
            try:
                # Never ask for more than one byte past the limit.
                block = resp.read(min(_CHUNK, max_bytes + 1 - received))
            except _MIRROR_ERRORS as exc:
                raise _mirror_failed(exc) from exc
            if not block:
                break
            received += len(block)
            if received > max_bytes:
                raise _MirrorFailed(f"server sent more than the {max_bytes} bytes expected; cut off")
            out.write(block)
            h.update(block)
    if expected_len is not None and received < expected_len:
        raise _mirror_failed(http.client.IncompleteRead(b"", expected_len - received))
    if expected_len is not None and received > expected_len:
        raise _MirrorFailed(
            f"server sent {received} bytes, more than its Content-Length {expected_len}"
        )
    return h.hexdigest()


def _reason(exc: BaseException) -> str:
    if isinstance(exc, http.client.IncompleteRead):
        return f"connection closed early, {exc.expected} byte(s) missing (interrupted download)"
    if isinstance(exc, urllib.error.HTTPError):
        return f"HTTP {exc.code} {exc.reason}"
    if isinstance(exc, urllib.error.URLError):
        return f"{exc.reason}"
    return f"{type(exc).__name__}: {exc}"


def download_file(
    filename: str,
    dest_dir: PathLike,
    mirrors: Sequence[str],
    sha256: str,
    *,
    timeout: float = 30.0,
    manual_hint: str = "",
    size: int | None = None,
) -> Path:
    """Download ``filename`` from the first mirror that delivers a good copy.

    The URL tried for each mirror is ``mirror.rstrip('/') + '/' + filename``.
    Mirrors are tried in order; a mirror that is unreachable, answers with an
    HTTP error, breaks off mid-transfer or serves a file with the wrong
    SHA-256 is skipped.

    Parameters
    ----------
    filename : str
        Base name of the file on the mirrors and on disk.
    dest_dir : str or os.PathLike
        Directory for the final file (created if needed).
    mirrors : sequence of str
        Base URLs.
    sha256 : str
        Expected hexadecimal SHA-256 of the file.
    timeout : float, optional
        Socket timeout in seconds for each connection and read.
    manual_hint : str, optional
        Extra text appended to error messages (how to get the data otherwise).
    size : int, optional
        Expected size in bytes.  A mirror announcing or sending more is
        skipped: the transfer stops one byte past ``size``.  Default: at most
        :data:`DOWNLOAD_MAX_BYTES`.

    Returns
    -------
    pathlib.Path
        The path of the verified file, ``dest_dir / filename``.

    Raises
    ------
    ChecksumError
        If no mirror delivered the right file and at least one delivered a
        file with a wrong digest.
    DownloadError
        If no mirror delivered the file at all.  ``offline`` is True when no
        server could be reached.
    DatasetError
        If the file cannot be written locally (full disk, no permission); the
        message names ``dest_dir / filename``.

    Examples
    --------
    >>> from bp_xp.data import download_file
    >>> download_file("f.gz", "/tmp/x", ["http://127.0.0.1:9/"], "0" * 64,
    ...               timeout=1)  # doctest: +SKIP
    Traceback (most recent call last):
    bp_xp.data.DownloadError: could not download f.gz ...
    """
    if not mirrors:
        raise DownloadError(
            f"could not download {filename}: the mirror list is empty",
            filename=filename,
            attempts=(),
            offline=False,
        )
    dest_dir = Path(dest_dir)
    final = dest_dir / filename
    try:
        dest_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise DatasetError(f"cannot write {final}: {exc.strerror or exc}") from exc
    max_bytes = DOWNLOAD_MAX_BYTES if size is None else int(size)
    expected = sha256.lower()
    attempts: list[tuple[str, str]] = []
    network_failures = 0
    bad_digests: list[tuple[str, str]] = []
    for mirror in mirrors:
        url = mirror.rstrip("/") + "/" + filename
        logger.info("bp_xp: downloading %s", url)
        try:
            # Raising inside the block removes the temporary file and keeps `final` as it was.
            with atomic_file(final) as out:
                actual = _stream(url, out, timeout, max_bytes)
                if actual != expected:
                    raise _MirrorFailed(f"SHA-256 mismatch: got {actual}, expected {expected}",
                                        digest=actual)
            return final
        except _MirrorFailed as failed:
            attempts.append((url, failed.reason))
            network_failures += failed.network
            if failed.digest is not None:
                bad_digests.append((url, failed.digest))
        except OSError as exc:  # writing here (full disk, no permission): no mirror can help
            raise DatasetError(f"cannot write {final}: {exc.strerror or exc}") from exc

    tried = "\n".join(f"  {url}: {why}" for url, why in attempts)
    hint = f"\n{manual_hint}" if manual_hint else ""
    if bad_digests:
        url, actual = bad_digests[0]
        raise ChecksumError(
            f"downloaded {filename} has the wrong SHA-256 (expected {expected}, "
            f"got {actual} from {url}); the bad file was deleted. URLs tried:\n{tried}{hint}",
            filename=filename,
            expected=expected,
            actual=actual,
        )
    offline = network_failures == len(attempts)
    if offline:
        head = (
            f"could not download {filename}: no mirror could be reached, this machine "
            "seems to be offline (or a firewall blocks the mirrors)."
        )
    else:
        head = f"could not download {filename} from any mirror."
    raise DownloadError(
        f"{head} URLs tried:\n{tried}{hint}",
        filename=filename,
        attempts=tuple(attempts),
        offline=offline,
    )
