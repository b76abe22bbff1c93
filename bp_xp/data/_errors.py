"""Exception types of :mod:`bp_xp.data`.

Every problem with a data file, a download or a dataset's contents is raised
as a :class:`DatasetError`.  It derives from :class:`ValueError`, so code that
already catches ``ValueError`` keeps working, while callers that want to tell
"the data is bad or unreachable" apart from programming errors can catch the
narrower type.
"""

from __future__ import annotations

__all__ = ["DatasetError", "ChecksumError", "DownloadError", "DataRangeWarning"]


class DatasetError(ValueError):
    """A dataset file or array is missing, malformed or unreachable.

    The message always names the file (or array) involved and says what was
    wrong with it.

    Examples
    --------
    >>> from bp_xp.data import DatasetError
    >>> issubclass(DatasetError, ValueError)
    True
    """


class ChecksumError(DatasetError):
    """A file's SHA-256 digest differs from the expected one.

    Attributes
    ----------
    filename : str
        The file whose digest did not match.
    expected, actual : str
        Hexadecimal SHA-256 digests.
    """

    def __init__(self, message: str, *, filename: str, expected: str, actual: str) -> None:
        super().__init__(message)
        self.filename = filename
        self.expected = expected
        self.actual = actual


class DownloadError(DatasetError):
    """No mirror delivered a file.

    Attributes
    ----------
    filename : str
        The file that could not be fetched.
    attempts : tuple of (str, str)
        ``(url, reason)`` for every URL that was tried, in order.
    offline : bool
        True when every attempt failed before a server answered (connection
        refused, DNS failure, timeout), i.e. the machine looks offline.
    """

    def __init__(
        self,
        message: str,
        *,
        filename: str,
        attempts: tuple[tuple[str, str], ...],
        offline: bool,
    ) -> None:
        super().__init__(message)
        self.filename = filename
        self.attempts = attempts
        self.offline = offline


class DataRangeWarning(UserWarning):
    """Dataset values lie far outside the range a network expects.

    Raised (as a warning) by :func:`bp_xp.data.validate_dataset`, and so by the
    Trainer, e.g. for raw 0..255 pixels where 0..1 is meant: training would
    run but learn little.  Silence it deliberately with
    ``warnings.filterwarnings("ignore", category=DataRangeWarning)`` or
    ``validate_dataset(..., max_abs=None)``.

    Examples
    --------
    >>> from bp_xp.data import DataRangeWarning
    >>> issubclass(DataRangeWarning, UserWarning)
    True
    """


# Show the public location in tracebacks and reprs.
for _cls in (DatasetError, ChecksumError, DownloadError, DataRangeWarning):
    _cls.__module__ = "bp_xp.data"
del _cls
