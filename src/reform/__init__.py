"""ReFORM: a content-based music recommender that learns what your own music sounds like."""

from .api import Library
from .errors import ReformError

__version__ = "0.1.0"
__all__ = ["Library", "ReformError", "__version__"]
