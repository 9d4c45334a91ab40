"""The interactive explorer: a local web page that shows a run's convergence map and computes
zoomed windows on demand (``nnfractal explore``).

``session.py`` holds the windows and the one background worker that trains them; ``server.py`` is
the FastAPI app over a session; ``static/`` is the page (plain JS + canvas, works offline).
"""
from .session import ExploreError, Session, check_window

__all__ = ["ExploreError", "Session", "check_window", "create_app"]


def create_app(*args, **kwargs):
    """`server.create_app`, imported lazily (FastAPI is only needed to serve)."""
    from .server import create_app as _create_app
    return _create_app(*args, **kwargs)
