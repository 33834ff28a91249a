"""Development only: what the tests, ``make stack`` and the benchmarks share.

``localservers`` (real PostgreSQL and Kafka on loopback), ``pytest_plugin`` (their
fixtures), ``testing`` (test helpers) and ``stack`` (``make stack``). No service image
installs this package; nothing under a runtime package imports it.
"""
