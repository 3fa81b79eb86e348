"""A TCP proxy in front of Redis that a test can partition: refused or black-holed.

``refuse()`` stops listening and drops every connection (clients get "connection refused");
``black_hole()`` keeps accepting connections but forwards no byte either way (clients hang
until their own timeouts); ``heal()`` forwards again. It runs on the test's event loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum

from tests.processes import free_port


class Mode(enum.Enum):
    OPEN = "open"
    REFUSED = "refused"
    BLACK_HOLE = "black_hole"


class TcpProxy:
    def __init__(self, target_port: int, target_host: str = "127.0.0.1") -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.mode = Mode.OPEN
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", self.port, reuse_address=True)

    async def refuse(self) -> None:
        self.mode = Mode.REFUSED
        await self._stop_listening()
        for writer in list(self._writers):
            writer.transport.abort()
        self._writers.clear()

    async def black_hole(self) -> None:
        if self._server is None:
            await self.start()
        self.mode = Mode.BLACK_HOLE

    async def heal(self) -> None:
        if self._server is None:
            await self.start()
        self.mode = Mode.OPEN

    async def close(self) -> None:
        await self.refuse()

    async def _stop_listening(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(self._server.wait_closed(), 1.0)
            self._server = None

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.transport.abort()
            return
        self._writers.update((writer, up_writer))
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                if self.mode is Mode.OPEN:  # black-holed: swallowed, never answered
                    writer.write(data)
                    await writer.drain()
        except (OSError, asyncio.CancelledError):
            pass
        finally:
            self._writers.discard(writer)
            writer.transport.abort()
