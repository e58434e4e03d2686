"""`python -m reform` and the `reform` command."""

import signal
import sys

_STOPPED: list[int] = []   # the signal that asked the command to stop, when one did


def _stop(signum: int, frame: object) -> None:
    """SIGTERM (`kill`, a service manager stopping `reform serve` or `reform mpd`, a cron job's
    timeout) stops a command the way Ctrl-C does: what is finished is kept, the workers end
    with it, and the way on is said, where the default would end the process mid-line."""
    _STOPPED.append(signum)
    raise KeyboardInterrupt


def run() -> int:
    """The CLI; a Ctrl-C that comes while its modules are still being imported (torch and numpy
    take a second or more on a busy machine) ends it with 130 and no traceback, as later ones do.
    Stopped by SIGTERM, it exits with 143 (128 + the signal) instead of Ctrl-C's 130."""
    if signal.getsignal(signal.SIGTERM) == signal.SIG_DFL:   # one ignored by the caller stays ignored
        signal.signal(signal.SIGTERM, _stop)
    try:
        from .cli import main
        code = main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        code = 130
    return 128 + _STOPPED[0] if _STOPPED and code == 130 else code


if __name__ == "__main__":
    sys.exit(run())
