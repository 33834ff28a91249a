"""grants' fast tests: domain rules and handlers on fakes, no PostgreSQL or Kafka.

A package of its own name: sandbox's tests/unit is the package ``unit``, and two
packages of one name collide under pytest's importlib mode.
"""
