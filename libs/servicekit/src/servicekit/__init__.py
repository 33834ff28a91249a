"""The cross-cutting kit every service uses.

Modules are named for what they hold: ``db`` (engines, sessions), ``outbox`` and
``inbox`` (transactional messaging), ``bus`` (Kafka and in-process transports),
``cloudevent`` (CloudEvents 1.0 envelopes), ``auth`` (JWT, principals, roles),
``problems`` (RFC 9457 errors), ``idempotency``, ``audit`` (hash-chained trail),
``telemetry`` (tracing, metrics, JSON logs), ``clock``, ``unit_of_work`` (one
transaction per command) and ``service`` (the FastAPI app every service is built on).
"""
