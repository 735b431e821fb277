"""pytest fixture `fake_ami`: a started FakeAmi per test, failing the test on AMI protocol violations
(something real Asterisk would refuse or misread), even if the code under test coped.

Use it with `from tests.fake_ami.pytest_plugin import fake_ami  # noqa: F401`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from .server import FakeAmi


@pytest_asyncio.fixture
async def fake_ami() -> AsyncIterator[FakeAmi]:
    fake = FakeAmi()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
    if fake.violations:
        pytest.fail("AMI protocol violations:\n  " + "\n  ".join(fake.violations), pytrace=False)
