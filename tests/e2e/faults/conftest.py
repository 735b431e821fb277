"""The fault matrix's server: the session's `hotline serve` is stopped and a second one started
with PostgreSQL and Asterisk's HTTP port (ARI) each behind a `TcpProxy`, so a case can make the
database slow or dead, or drop the ARI WebSocket, without touching the shared cluster or Asterisk.
The session's server is started again afterwards, as it was."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit

import pytest
import pytest_asyncio

from tests.e2e.conftest import RUN, Hotline
from tests.e2e.faults.matrix import CallerEars
from tests.support.proxy import TcpProxy


@dataclass
class FaultyServer:
    server: Hotline  # `hotline serve` under test; its env reaches PostgreSQL and ARI through the proxies
    db: TcpProxy
    ari: TcpProxy
    dsn: str  # PostgreSQL directly: the test's own view of the journeys


@pytest.fixture(scope="session")
def ears() -> Iterator[CallerEars]:
    with CallerEars() as listening:
        yield listening


def _through(url: str, proxy: TcpProxy) -> str:
    parts = urlsplit(url)
    return parts._replace(netloc=parts.netloc.replace(f":{parts.port}", f":{proxy.port}")).geturl()


@pytest_asyncio.fixture(loop_scope="session")
async def faulty(hotline: Hotline) -> AsyncIterator[FaultyServer]:
    """A fresh `hotline serve` behind the proxies, for one test."""
    dsn = hotline.env["HOTLINE_DSN"]
    pg, ari = urlsplit(dsn), urlsplit(hotline.env["HOTLINE_ARI_URL"])
    assert pg.hostname and pg.port and ari.hostname and ari.port
    db, ari_proxy = TcpProxy(pg.hostname, pg.port), TcpProxy(ari.hostname, ari.port)
    await db.start()
    await ari_proxy.start()
    env = {**hotline.env, "HOTLINE_DSN": db.through(dsn),
           "HOTLINE_ARI_URL": _through(hotline.env["HOTLINE_ARI_URL"], ari_proxy)}
    server = Hotline(env, hotline.observer, RUN / "e2e-faults-serve.log", hotline.tmp)
    server.log_path.write_text("")
    assert await hotline.stop_serve() == 0
    try:
        await server.start_serve()
        yield FaultyServer(server, db, ari_proxy, dsn)
    finally:
        try:
            if server.server is not None:
                await server.stop_serve()
        finally:
            await db.stop()
            await ari_proxy.stop()
            await hotline.start_serve()
