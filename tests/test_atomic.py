"""The one atomic writer (bp_xp/_atomic.py) that checkpoints and downloads share.

Checkpoint- and download-level behaviour is tested in test_checkpoint*.py and
test_data.py; here the writer's own promises: rename only on success, nothing left on
abort, errors naming the user's path, stale temporaries of dead processes removed and
everything else kept.
"""

import errno
import os
import subprocess
import sys
import time

import pytest

from bp_xp._atomic import atomic_file, atomic_write, remove_stale_temporaries


def _dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def _names(directory) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


def test_the_file_appears_complete_and_only_on_success(tmp_path):
    target = tmp_path / "out.bin"
    with atomic_file(target) as file:
        file.write(b"first half, ")
        assert not target.exists()  # nothing at the target while the body runs
        (temporary,) = [p for p in tmp_path.iterdir()]
        assert temporary.name.startswith(f".out.bin.{os.getpid()}.")
        assert temporary.name.endswith(".tmp")
        file.write(b"second half")
    assert target.read_bytes() == b"first half, second half"
    assert _names(tmp_path) == ["out.bin"]


@pytest.mark.parametrize("abort", [ValueError("checksum mismatch"), KeyboardInterrupt()])
def test_raising_in_the_body_aborts_and_keeps_the_old_file(tmp_path, abort):
    target = tmp_path / "out.bin"
    target.write_bytes(b"old")
    with pytest.raises(type(abort)):
        with atomic_file(target) as file:
            file.write(b"new but unverified")
            raise abort
    assert target.read_bytes() == b"old"
    assert _names(tmp_path) == ["out.bin"]


def test_atomic_write_is_the_one_call_form(tmp_path):
    target = tmp_path / "out.bin"
    atomic_write(str(target), lambda file: file.write(b"abc"))
    assert target.read_bytes() == b"abc"

    def fail(file):
        file.write(b"half")
        raise OSError(errno.ENOSPC, "No space left on device (simulated)")

    with pytest.raises(OSError, match="simulated"):
        atomic_write(target, fail)
    assert target.read_bytes() == b"abc" and _names(tmp_path) == ["out.bin"]


def test_errors_of_the_writer_name_the_users_path(tmp_path, monkeypatch):
    target = tmp_path / "missing-dir" / "out.bin"
    with pytest.raises(FileNotFoundError) as caught:
        with atomic_file(target):
            pass
    assert caught.value.filename == str(target) and ".tmp" not in str(caught.value)

    target = tmp_path / "out.bin"

    def refuse(src, dst):
        raise PermissionError(errno.EACCES, "Permission denied", src, None, dst)

    monkeypatch.setattr(os, "replace", refuse)
    with pytest.raises(PermissionError) as caught:
        with atomic_file(target) as file:
            file.write(b"x")
    assert caught.value.filename == str(target) and ".tmp" not in str(caught.value)
    assert _names(tmp_path) == []


def test_a_directory_or_fifo_at_the_target_is_refused(tmp_path):
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    with pytest.raises(OSError, match="not a regular file"):
        with atomic_file(fifo):
            pytest.fail("the body must not run")
    with pytest.raises(IsADirectoryError):
        with atomic_file(tmp_path):
            pytest.fail("the body must not run")
    assert fifo.is_fifo() and _names(tmp_path) == ["pipe"]


def test_stale_temporaries_of_dead_processes_go_the_rest_stay(tmp_path):
    target = tmp_path / "net.npz"
    dead = tmp_path / f".net.npz.{_dead_pid()}.0a1b2c.tmp"
    mine = tmp_path / f".net.npz.{os.getpid()}.0a1b2c.tmp"  # a write running now
    init = tmp_path / ".net.npz.1.0a1b2c.tmp"  # pid 1 is alive (or not ours to probe)
    no_pid = tmp_path / ".net.npz.backup.tmp"  # not ours: no pid, whatever its age
    legacy_old = tmp_path / ".net.npz.k2j4_x9q.part"  # a bp_xp 0.1 download, killed
    legacy_new = tmp_path / ".net.npz.a8d3mz0w.part"  # maybe a 0.1 download running now
    legacy_dead = tmp_path / f".net.npz.{_dead_pid()}.x.part"
    other = tmp_path / f".other.npz.{_dead_pid()}.0a1b2c.tmp"  # another target's
    for path in (dead, mine, init, no_pid, legacy_old, legacy_new, legacy_dead, other):
        path.write_bytes(b"partial")
    old = time.time() - 2 * 86400
    for path in (no_pid, legacy_old):
        os.utime(path, (old, old))
    not_a_file = tmp_path / f".net.npz.{_dead_pid()}.dir.tmp"
    not_a_file.mkdir()

    removed = remove_stale_temporaries(target)

    assert sorted(removed) == sorted(map(str, (dead, legacy_old, legacy_dead)))
    assert _names(tmp_path) == sorted(
        p.name for p in (mine, init, no_pid, legacy_new, other, not_a_file))


def test_every_write_cleans_up_after_killed_writers(tmp_path):
    dead = tmp_path / f".out.bin.{_dead_pid()}.0a1b2c.tmp"
    dead.write_bytes(b"left by kill -9")
    atomic_write(tmp_path / "out.bin", lambda file: file.write(b"x"))
    assert _names(tmp_path) == ["out.bin"]
