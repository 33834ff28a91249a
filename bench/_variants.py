"""App factories for ``bench/_ab.py``: the service as it is, and with one change undone;
and for ``bench/_timeline.py``: the service as it is, timing each posting's stages.

Each is what a figure in bench/README.md measured; the servers import this module (the
bench folder is on their ``PYTHONPATH``).
"""

from __future__ import annotations

from fastapi import FastAPI

from ipshare.app import create_app


def as_is() -> FastAPI:
    return create_app()


def gc_tuned() -> FastAPI:
    """Start-up objects frozen out of the collector, young collections 30× rarer
    (measured and dropped in the fifth round)."""
    import gc

    app = create_app()
    gc.freeze()
    gc.set_threshold(20_000, 20, 20)
    return app


# The stages ``timed`` records for each POST, in order; each is wall and thread-CPU time.
STAGES = ("before_reads", "reads", "handler", "write", "answer", "app")


def timed() -> object:
    """The service as it is, recording where each POST's time goes (``bench/_timeline.py``).

    Per request, wall and thread-CPU seconds of: ``before_reads`` (the ASGI call up to
    the first pipeline: routing, middleware, the span, the token, the body), ``reads``
    (the first pipeline's round trip), ``handler`` (between the pipelines), ``write``
    (the INSERT and ``COMMIT``), ``answer`` (to the response's start) and ``app`` (the
    whole ASGI call), one JSON line each in ``$BENCH_TIMELINE_OUT``. Meant for
    concurrency 1: the event loop serves one request at a time, so its thread's CPU
    between two marks is that request's.
    """
    import itertools
    import json
    import os
    import time

    from servicekit.hotpath.pipeline import PipelinedConnection

    app = create_app()
    sink = open(os.environ["BENCH_TIMELINE_OUT"], "a", buffering=1)  # noqa: SIM115
    marks: list[tuple[float, float]] = []

    def mark() -> None:
        marks.append((time.perf_counter(), time.thread_time()))

    def around(step: object) -> object:
        async def timed_step(*args: object, **kwargs: object) -> object:
            mark()
            try:
                return await step(*args, **kwargs)  # type: ignore[operator]
            finally:
                mark()
        return timed_step

    PipelinedConnection.fetch = around(PipelinedConnection.fetch)  # type: ignore[method-assign]
    PipelinedConnection.commit = around(PipelinedConnection.commit)  # type: ignore[method-assign]

    async def timed_app(scope: dict, receive: object, send: object) -> None:
        if scope["type"] != "http" or scope["method"] != "POST":
            return await app(scope, receive, send)  # type: ignore[arg-type]
        marks.clear()
        mark()
        answered: list[tuple[float, float]] = []

        async def timed_send(message: dict) -> None:
            if message["type"] == "http.response.start":
                answered.append((time.perf_counter(), time.thread_time()))
            await send(message)  # type: ignore[operator]

        await app(scope, receive, timed_send)  # type: ignore[arg-type]
        if len(marks) == 5 and answered:  # a posting: entry, two pipelines' ends
            points = [*marks, answered[0]]
            spans = [(b[0] - a[0], b[1] - a[1]) for a, b in itertools.pairwise(points)]
            spans.append((points[-1][0] - points[0][0], points[-1][1] - points[0][1]))
            sink.write(json.dumps(dict(zip(STAGES, spans, strict=True))) + "\n")

    return timed_app
