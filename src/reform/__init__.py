"""ReFORM: a content-based music recommender that learns what your own music sounds like."""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .api import Library
    from .errors import ReformError

__version__ = "0.1.0"
__all__ = ["Library", "ReformError", "__version__"]


def __getattr__(name: str):
    """Import ``Library`` and ``ReformError`` when first used: the `reform` command imports this
    package before its own code runs, and a Ctrl-C during a long import here would print a
    traceback that the command cannot catch."""
    if name == "Library":
        from .api import Library
        return Library
    if name == "ReformError":
        from .errors import ReformError
        return ReformError
    raise AttributeError(f"module 'reform' has no attribute {name!r}")
