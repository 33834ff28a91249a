"""App factories for ``bench/_ab.py``: the service as it is, and with one change undone.

Each is what a figure in bench/README.md compared; the servers import this module (the
bench folder is on their ``PYTHONPATH``).
"""

from __future__ import annotations

from fastapi import FastAPI

from ipshare.app import create_app


def as_is() -> FastAPI:
    return create_app()


def unbatched() -> FastAPI:
    """Each statement of a pipeline flushed to the socket as it is executed (psycopg's
    own behaviour, before the fifth round's ``sent_together``)."""
    from servicekit import pipelined

    pipelined._COMMUNICATE = None  # sent_together then changes nothing
    return create_app()


def gc_tuned() -> FastAPI:
    """Start-up objects frozen out of the collector, young collections 30× rarer
    (measured and dropped in the fifth round)."""
    import gc

    app = create_app()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    return app
