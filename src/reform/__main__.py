"""`python -m reform` and the `reform` command."""

import sys


def run() -> int:
    """The CLI; a Ctrl-C that comes while its modules are still being imported (torch and numpy
    take a second or more on a busy machine) ends it with 130 and no traceback, as later ones do."""
    try:
        from .cli import main
        return main()
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(run())
