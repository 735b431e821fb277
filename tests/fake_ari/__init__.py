"""Strict fake of Asterisk 22's ARI (HTTP + WebSocket on loopback) for the fast test suite.

See ``server.FakeAri``; the ``fake_ari`` pytest fixture lives in ``pytest_plugin``.
"""

from .fixtures import Recordings, load_recordings
from .server import FakeAri, FakeChannel, FakePlayback, RecordedRequest
from .swagger import Swagger, SwaggerError, load_swagger

__all__ = [
    "FakeAri",
    "FakeChannel",
    "FakePlayback",
    "RecordedRequest",
    "Recordings",
    "Swagger",
    "SwaggerError",
    "load_recordings",
    "load_swagger",
]
