"""Progress display for long work: a bar per training epoch and one summary line per epoch, and
a bar for scanning, embedding and checking."""

from __future__ import annotations

import math
import sys
import time
from typing import Any


# every loss term an epoch reports (and auxN): the logged terms add up to the total with their weights
LOSS_TERMS = ("total", "main", "contrast", "cluster")
LOG_EVERY = 60.0   # seconds between the lines long work writes where there is no terminal for a bar


class TrainProgress:
    """Renders Trainer events: phase, epoch, loss per term, learning rate, windows/s, plateaus, ETA.

    The bar goes to stderr and disappears after each epoch; the epoch's summary
    line goes to stdout and stays, as the training log.
    """

    def __init__(self, quiet: bool = False, stream=None):
        # the stream of the moment, not the one of import time (which a test's capture may close)
        self.quiet, self.stream = quiet, stream or sys.stderr
        self.bar = None
        self.phase = None
        self.epoch_times: list[float] = []   # this phase's: a clustering epoch costs another time

    def __call__(self, event: dict[str, Any]) -> None:
        kind = event["type"]
        if kind == "epoch_start":
            self._start(event)
        elif kind == "batch" and self.bar is not None:
            self.bar.update(event["windows"])
        elif kind == "epoch_end":
            self._end(event)

    def _start(self, event: dict) -> None:
        self.started = time.perf_counter()
        if event["phase"] != self.phase:
            self.phase, self.epoch_times = event["phase"], []
        if self.quiet:
            return
        from tqdm import tqdm

        left = event["max_epochs"] - event["epoch"] + 1
        eta = ""
        if self.epoch_times:
            per = sum(self.epoch_times[-5:]) / len(self.epoch_times[-5:])
            eta = f", up to about {_duration(left * per)} left in this phase"
        self.bar = tqdm(total=event["windows"], unit="win", dynamic_ncols=True, leave=False,
                        file=self.stream, disable=None,   # None: only on a terminal, never in a log
                        desc=f"{event['phase']} epoch {event['epoch']} (lr {event['lr']:g}, "
                             f"plateaus {event['plateaus']}{eta})")

    def _end(self, event: dict) -> None:
        self.close()
        self.epoch_times.append(time.perf_counter() - self.started)
        terms = "  ".join(f"{k} {event[k]:.4f}" for k in event if k in LOSS_TERMS or k.startswith("aux"))
        ratio = event.get("spread_ratio")   # infinite: no song of the probe gave two windows
        spread = f"  between/within {ratio:.2f}" if ratio is not None and math.isfinite(ratio) else ""
        flag = f"  [{event['event']}]" if event.get("event") else ""
        print(f"{event['phase']:8s} epoch {event['epoch']:3d}  {terms}  lr {event['lr']:g}  "
              f"{event['windows_per_s']:.0f} win/s  plateaus {event['plateaus']}{spread}{flag}",
              flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


class Bar:
    """A tqdm bar for long library work (when asked for), plus the caller's own start and step
    callbacks (the web page's jobs use those).  Where there is no terminal (a log, cron's mail),
    a line every :data:`LOG_EVERY` seconds says how far it got instead: a scan of hours said
    nothing until it ended."""

    def __init__(self, show: bool, desc: str, unit: str, on_start=None, on_step=None):
        self.show, self.desc, self.unit = show, desc, unit
        self.on_start, self.on_step = on_start, on_step
        self.bar = None
        self.logging = False   # no terminal: a line now and then, from these
        self.began = self.said = 0.0
        self.total = self.done = 0

    def start(self, total: int) -> None:
        if self.on_start:   # first: what the caller prints comes before the bar
            self.on_start(total)
        if self.show and total:
            from tqdm import tqdm

            # disable=None: a bar on a terminal only; a log or a pipe (cron) gets no \r-separated updates
            self.bar = tqdm(total=total, unit=self.unit, desc=self.desc, dynamic_ncols=True, disable=None)
            if self.bar.disable:
                self.logging, self.began, self.said, self.total = True, time.monotonic(), time.monotonic(), total

    def step(self, n: int) -> None:
        if self.bar is not None:
            self.bar.update(n)
        if self.logging:
            self._say(n)
        if self.on_step:
            self.on_step(n)

    def _say(self, n: int) -> None:
        self.done += n
        now = time.monotonic()
        if now - self.said < LOG_EVERY or self.done >= self.total:
            return
        self.said = now
        spent = now - self.began
        left = f", about {_duration(spent * (self.total - self.done) / self.done)} left" if self.done else ""
        print(f"{self.desc}: {self.done} of {self.total} {self.unit}s ({100 * self.done / self.total:.0f} %), "
              f"{_duration(spent)} in{left}", file=sys.stderr, flush=True)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc) -> None:
        if self.bar is not None:
            self.bar.close()
