"""A TCP proxy the tests put between the app and PostgreSQL to make the database slow or dead
on demand — the real failure modes, with the real driver."""

from __future__ import annotations

import asyncio


class TcpProxy:
    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = 0
        self.delay = 0.0  # seconds added before forwarding each chunk
        self.refuse = False  # new connections are closed at once
        self._server: asyncio.Server | None = None
        self._links: set[asyncio.Task[None]] = set()
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]

    async def stop(self) -> None:
        if self._server:
            self._server.close()
        self.cut()
        for task in list(self._links):
            task.cancel()

    def through(self, dsn: str) -> str:
        """`dsn` (a URL to the target) reaching the target through this proxy."""
        return dsn.replace(f":{self.target[1]}/", f":{self.port}/")

    def cut(self) -> None:
        """Drop every open connection."""
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    def go_down(self) -> None:
        """The database goes down: open connections are dropped, new ones refused (until `refuse`
        is False again)."""
        self.refuse = True
        self.cut()

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self.refuse:
            writer.close()
            return
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.update({writer, up_writer})
        for src, dst in ((reader, up_writer), (up_reader, writer)):
            task = asyncio.create_task(self._pump(src, dst))
            self._links.add(task)
            task.add_done_callback(self._links.discard)

    async def _pump(self, src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                if self.delay:
                    await asyncio.sleep(self.delay)  # the slow database: what the tests ask for
                if self.refuse:
                    break
                dst.write(data)
                await dst.drain()
        except OSError:
            pass  # the other side went away: so does this side
        finally:
            dst.close()
