"""The sandbox's own settings refuse values that would silently change what it does."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from sandbox.settings import SandboxSettings


def test_a_negative_scheduler_interval_is_refused_and_zero_turns_the_scheduler_off():
    with pytest.raises(ValidationError, match="scheduler_seconds"):
        SandboxSettings(scheduler_seconds=-1)
    assert SandboxSettings(scheduler_seconds=0).scheduler_seconds == 0
