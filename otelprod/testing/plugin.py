"""The pytest plugin (entry point ``pytest11``): the ``otelprod_telemetry`` fixture.

Loaded by pytest in every project that has otelprod installed, so it imports
nothing heavy until a test asks for the fixture; a test that does not asks
for nothing and nothing is installed.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from otelprod.testing import Telemetry


@pytest.fixture
def otelprod_telemetry() -> Iterator[Telemetry]:
    """The spans, metric points and log records emitted during this test.

    Set ``otelprod_telemetry.deterministic = True`` for ids and timestamps that are
    the same on every run. Testing mode (``set_testing``) is switched off after the
    test if the test left it on.
    """
    from otelprod.testing import Telemetry
    from otelprod.testing._switch import is_testing, set_testing

    telemetry = Telemetry()
    testing_before = is_testing()
    yield telemetry
    telemetry.clear()
    if is_testing() and not testing_before:
        set_testing(False)
