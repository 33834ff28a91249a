"""Keep the real ``gateway`` package importable in this folder's tests.

Under ``--import-mode=importlib`` pytest names test modules after their path from the
rootdir (``gateway.tests.unit.test_proxy``) and, to import them, registers the
repository's ``gateway/`` folder as a namespace package called ``gateway``, shadowing
the installed package (``gateway/src/gateway``). This conftest is imported first, so it
puts the real package back; ``gateway.tests`` stays registered for the test modules.
"""

import importlib
import sys

_shadow = sys.modules.get("gateway")
if _shadow is not None and getattr(_shadow, "__file__", None) is None:
    del sys.modules["gateway"]
    _real = importlib.import_module("gateway")
    _real.tests = sys.modules["gateway.tests"]  # type: ignore[attr-defined]
