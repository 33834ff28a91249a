"""What the reliability tests send, and how big: the sizes, the cast, the calls.

Sizes come from ``RELIABILITY_<NAME>`` environment variables (``README.md`` lists them);
the defaults keep the suite within a few minutes on a 2-core machine.
"""

from __future__ import annotations

import os


def size(name: str, default: int | float) -> int | float:
    """``RELIABILITY_<NAME>`` from the environment, else ``default`` (of its type)."""
    value = os.environ.get(f"RELIABILITY_{name}", "").strip()
    return type(default)(value) if value else default
