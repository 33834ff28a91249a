"""The cross-cutting kit every service uses.

Modules are named for what they hold, and read top-down (none imports one that imports
it back: tests/unit/test_import_graph.py): ``db`` (engines, sessions), ``outbox`` and
``inbox`` (transactional messaging), ``bus`` (Kafka and in-process transports),
``cloudevent`` (CloudEvents 1.0 envelopes), ``auth`` (JWT, principals, roles),
``problems`` (RFC 9457 errors) and ``domain_errors`` (the errors a domain raises),
``idempotency`` (the Idempotency-Key, from claim to replay), ``audit`` (hash-chained
trail), ``telemetry`` (tracing, metrics, JSON logs), ``clock``, ``kit`` (what a running
service holds), ``unit_of_work`` (one transaction per command), ``hotpath`` (the same
interface in two round trips, for the busiest writes) and ``service`` (the FastAPI app
every service is built on).
"""
