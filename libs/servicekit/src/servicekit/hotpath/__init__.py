"""The hot write path: a command in two round trips, behind the unit of work's interface.

A hot route is an ``async def`` whose unit of work (:mod:`.unit_of_work`) reads once,
lets the handler decide, and writes once::

    async def post_income(agreement_id: str, body: IncomeCreate, uow: PostingUnitOfWork):
        async with uow:
            inputs = await uow.load(repository.income_inputs(agreement_id, body.reference))
            return handlers.post_income(uow, inputs, agreement_id, body)

1. :meth:`~.unit_of_work.HotUnitOfWork.load`: ``BEGIN``, the load's first statement
   (the command's row lock), the Idempotency-Key's look-up, the load's other statements:
   **one round trip**; a stored answer for the key is replayed from here.
2. The handler, in Python, with no I/O: the same handler, written against
   ``servicekit.unit_of_work.AbstractUnitOfWork``, runs on an ordinary unit of work too.
   Its ``insert``, ``record(..., new=True)``, ``emit`` and ``commit`` only queue.
3. Leaving the ``async with``: the queued rows (:mod:`.statements`, usually one
   statement) and ``COMMIT``: **one round trip**.

On PostgreSQL, while the app's lifespan holds the pool (:func:`.pipeline.open_pool`),
both round trips are psycopg pipelines on the event loop (:mod:`.pipeline`): no thread
hop, no session. Elsewhere (SQLite, ``make run``): the same statements in the same order
on one connection, in worker threads (:mod:`.threaded`).

Nothing here is needed by a command that is not hot: an ordinary route takes
``servicekit.unit_of_work.UnitOfWorkDep``.
"""
