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


# Fixtures every gateway test may use (defined after the package fix-up above).
from collections.abc import Callable  # noqa: E402
from pathlib import Path  # noqa: E402

import pytest  # noqa: E402

from servicekit.devtokens import DevIssuer  # noqa: E402

Bearer = Callable[..., dict[str, str]]


@pytest.fixture
def key_dir(tmp_path: Path) -> Path:
    """The dev key pair the gateway under test (dev profile) verifies with."""
    return tmp_path / "keys"


@pytest.fixture
def bearer(key_dir: Path) -> Bearer:
    """``bearer("researcher", sub=..., org=...)``: an Authorization header with a valid
    token of those roles."""
    issuer = DevIssuer(key_dir)

    def make(*roles: str, sub: str = "user-1", org: str = "org-1") -> dict[str, str]:
        token = issuer.issue(sub, name=sub, org=org, roles=list(roles))
        return {"Authorization": f"Bearer {token}"}

    return make
