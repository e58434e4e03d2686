"""Run an iterator in a background thread, a few items ahead of the code that consumes it.

A scan worker decodes and resamples a file (PyAV and soxr release the GIL) in such a
thread while its own thread turns the previous block into a log-mel spectrogram (torch
releases it too), so a worker keeps two cores busy where it gets them: at the end of a
scan, when the other workers have nothing left to do, and on machines with spare cores.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterator
from typing import TypeVar

T = TypeVar("T")

_END = object()


class _Raised:
    """An exception raised by the source, carried to the consumer's thread."""

    def __init__(self, exc: BaseException):
        self.exc = exc


def read_ahead(source: Iterator[T], depth: int = 2, name: str = "reform-read-ahead") -> Iterator[T]:
    """Yield the items of ``source``, produced in another thread up to ``depth`` items ahead.

    An exception raised by ``source`` is raised here, in the consumer, where ``source``
    would have raised it.  When the consumer stops early (``close()``, an exception such as
    KeyboardInterrupt, or garbage collection), the thread stops after the item it is making,
    closes ``source`` and is joined before this generator returns: no thread outlives it.
    """
    items: queue.Queue = queue.Queue(maxsize=max(1, depth))
    stop = threading.Event()

    def produce() -> None:
        try:
            for item in source:
                items.put(item)
                if stop.is_set():
                    return
            items.put(_END)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer, which re-raises it
            items.put(_Raised(exc))
        finally:
            close = getattr(source, "close", None)
            if close is not None:
                close()  # in the thread that ran it: a generator cannot be closed from another

    thread = threading.Thread(target=produce, name=name, daemon=True)
    thread.start()
    try:
        while True:
            item = items.get()
            if item is _END:
                return
            if isinstance(item, _Raised):
                raise item.exc
            yield item
    finally:
        stop.set()
        while thread.is_alive():  # free a slot for a producer blocked in put(), then wait
            try:
                items.get(timeout=0.05)
            except queue.Empty:
                pass
        thread.join()
