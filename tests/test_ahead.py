"""Reading ahead in a thread: every item in order, errors where the consumer is, no thread left."""

import os
import signal
import threading
import time

import pytest

from reform.ahead import read_ahead


class Source:
    """A generator that notes how far it got and whether it was closed, from any thread."""

    def __init__(self, n: int | None = None, fail_at: int | None = None, delay: float = 0.0):
        self.n, self.fail_at, self.delay = n, fail_at, delay
        self.made, self.closed, self.threads = 0, False, set()

    def __iter__(self):
        try:
            i = 0
            while self.n is None or i < self.n:
                self.threads.add(threading.current_thread().name)
                if i == self.fail_at:
                    raise ValueError(f"bad block {i}")
                time.sleep(self.delay)
                self.made += 1
                yield i
                i += 1
        finally:
            self.closed = True


def ahead_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name == "reform-read-ahead"]


def test_every_item_arrives_in_order_made_in_another_thread():
    source = Source(50)
    assert list(read_ahead(iter(source), depth=3)) == list(range(50))
    assert source.threads == {"reform-read-ahead"} and source.closed
    assert not ahead_threads()


def test_an_error_in_the_source_is_raised_in_the_consumer_and_the_thread_ends():
    source = Source(10, fail_at=4)
    got = []
    with pytest.raises(ValueError, match="bad block 4"):
        for item in read_ahead(iter(source)):
            got.append(item)
    assert got == [0, 1, 2, 3] and source.closed
    assert not ahead_threads()


def test_a_consumer_that_stops_early_stops_the_thread_and_closes_the_source():
    source = Source(None)  # endless: only the stop can end it
    blocks = read_ahead(iter(source), depth=2)
    assert [next(blocks) for _ in range(3)] == [0, 1, 2]
    blocks.close()
    assert source.closed and not ahead_threads()
    assert source.made <= 3 + 2 + 1  # what was taken, the queue, and the one being made


def test_ctrl_c_while_waiting_for_a_slow_source_stops_at_once():
    # the tests may run with SIGINT ignored (in a shell's background): restore Ctrl-C
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    source = Source(None, delay=0.05)
    timer = threading.Timer(0.3, os.kill, (os.getpid(), signal.SIGINT))
    started = time.perf_counter()
    try:
        timer.start()
        with pytest.raises(KeyboardInterrupt):
            for _ in read_ahead(iter(source), depth=1):
                pass
    finally:
        timer.cancel()
        signal.signal(signal.SIGINT, previous)
    assert time.perf_counter() - started < 2.0
    assert source.closed and not ahead_threads()
