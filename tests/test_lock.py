"""One writer per home: a second writer is refused with the first one's name; a crash frees it."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import build_music, reform_cmd
from reform import Library
from reform.errors import BusyError
from reform.lock import WriterLock


def test_a_second_writer_is_refused_with_the_holders_name(tmp_path):
    first, second = WriterLock(tmp_path), WriterLock(tmp_path)
    assert second.holder() is None
    first.acquire("scan")
    with pytest.raises(BusyError, match=rf"busy: scan \(PID {os.getpid()}\) since \d{{4}}-") as err:
        second.acquire("train")
    assert "wait until it has finished" in err.value.hint
    holder = second.holder()
    assert (holder.pid, holder.task) == (os.getpid(), "scan") and holder.since <= time.time()
    first.release()
    assert second.holder() is None
    with second.hold("train"):
        assert first.holder().task == "train"


def test_a_look_at_the_lock_refuses_no_writer(tmp_path):
    """`reform status` and the web page find the holder by taking the lock for an instant: a
    scan started in that instant was refused as "busy: another process is changing it"."""
    import fcntl
    import threading

    lock = WriterLock(tmp_path)
    lock.acquire("scan")
    lock.release()                                   # the lock file exists, nobody holds it
    fd = os.open(lock.path, os.O_RDWR)
    fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)   # a look, caught in its instant
    threading.Timer(0.05, os.close, [fd]).start()
    with WriterLock(tmp_path).hold("scan"):          # waits the look out
        assert WriterLock(tmp_path).holder().task == "scan"
    looking = [WriterLock(tmp_path).holder() for _ in range(2)]   # looks do not take it from each other
    assert looking == [None, None]


def test_the_lock_is_reentrant_in_one_holder(tmp_path):
    lock = WriterLock(tmp_path)
    with lock.hold("check --repair"):
        with lock.hold("scan"):                      # the repair scans under its own lock
            pass
        with pytest.raises(BusyError):
            WriterLock(tmp_path).acquire("embed")    # still held after the inner release
    WriterLock(tmp_path).acquire("embed")


def test_a_killed_holder_frees_the_lock(tmp_path):
    code = ("import sys, time; from reform.lock import WriterLock; "
            "WriterLock(sys.argv[1]).acquire('scan'); print('held', flush=True); time.sleep(60)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(tmp_path)], stdout=subprocess.PIPE)
    assert proc.stdout.readline() == b"held\n"
    assert WriterLock(tmp_path).holder().pid == proc.pid
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    with WriterLock(tmp_path).hold("scan"):          # nothing stale to clean up
        pass


def _signal_then_sleep(running) -> None:
    running.set()
    time.sleep(60)


def test_a_child_forked_while_holding_does_not_keep_the_home_locked(tmp_path):
    """A training's loader workers are forked while it holds the lock and may outlive its release."""
    import multiprocessing

    lock = WriterLock(tmp_path)
    lock.acquire("train")
    fork = multiprocessing.get_context("fork")
    running = fork.Event()
    child = fork.Process(target=_signal_then_sleep, args=(running,))
    child.start()
    try:
        assert running.wait(30)           # the child is past its fork
        lock.release()
        assert child.is_alive()
        other = WriterLock(tmp_path)
        other.acquire("scan")            # a copy of the descriptor in the child would refuse this
        assert other.holder().task == "scan"
        other.release()
    finally:
        child.kill()
        child.join()


def test_library_writers_take_the_lock(tmp_path, music):
    with Library(tmp_path / "home") as lib:
        lib.scan(music, jobs=1)
        other = WriterLock(lib.home.path)
        other.acquire("train")
        with pytest.raises(BusyError, match="train"):
            lib.scan(jobs=1)
        other.release()
        assert lib.scan(jobs=1).unchanged == 4
        assert lib.songs()                            # readers never wait


def test_cli_says_busy_in_one_line(tmp_path, music, capsys):
    from reform.cli import main

    assert main(["--home", str(tmp_path / "home"), "-q", "scan", str(music), "--jobs", "1",
                 "--no-embed"]) == 0
    capsys.readouterr()
    with WriterLock(tmp_path / "home").hold("embed"):
        assert main(["--home", str(tmp_path / "home"), "-q", "scan", "--jobs", "1"]) == 1
    err = capsys.readouterr().err.splitlines()
    assert err[0].startswith("error: ") and f"embed (PID {os.getpid()})" in err[0]
    assert err[1].startswith("hint: wait") and len(err) == 2


def test_two_scans_at_once_never_corrupt_the_home(tmp_path):
    """The issue's race: two scans of one home, started together; one may be refused, but
    every song recorded has its spectrogram, and a third scan has nothing to do."""
    root, home = build_music(tmp_path / "music"), tmp_path / "home"
    Library(home).close()  # the home exists, so both scans start at once on the same catalogue
    procs = [subprocess.Popen(reform_cmd("--home", str(home), "-q", "scan", str(root), "--jobs", "1",
                                         "--no-embed"), stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for _ in range(2)]
    results = [(p.wait(timeout=120), p.stderr.read().decode()) for p in procs]
    assert all(code == 0 or (code == 1 and "busy" in err) for code, err in results), results
    assert any(code == 0 for code, _ in results)
    with Library(home, create=False) as lib:
        for song in lib.songs():
            assert np.isfinite(lib.spectrogram(song.path)).all()
        assert len(lib.songs()) == 5
        again = lib.scan(jobs=1)
        assert (again.analysed, again.reused, again.unchanged) == (0, 0, 5)
