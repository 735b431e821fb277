"""pytest fixture ``fake_ari``: a started FakeAri per test, failing the test on protocol violations.

Why at teardown: a violation means the app sent something real Asterisk would refuse or misread;
the test that provoked it must fail even if the app coped with the fake's 400.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from .server import FakeAri
from .swagger import load_swagger


def pytest_collection_finish(session: pytest.Session) -> None:
    """Stop the run once, plainly, when the declarations that police the fake are missing
    (instead of one identical error per test that uses it)."""
    uses_fake = any("fake_ari" in getattr(item, "fixturenames", ()) for item in session.items)
    if not uses_fake:
        return
    try:
        load_swagger()
    except FileNotFoundError as exc:
        pytest.exit(f"{exc} — run `make chroot` first", returncode=4)


@pytest_asyncio.fixture
async def fake_ari() -> AsyncIterator[FakeAri]:
    """A FakeAri listening on 127.0.0.1 (free port); stopped after the test."""
    fake = FakeAri()
    await fake.start()
    try:
        yield fake
    finally:
        await fake.stop()
    if fake.violations:
        pytest.fail("ARI protocol violations:\n  " + "\n  ".join(fake.violations), pytrace=False)
