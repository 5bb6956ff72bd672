"""A scripted server on 127.0.0.1 for the bench's reconnecting subscribers.

Its n-th connection gets the n-th `Reply` of the script, whatever the client
sent, so a run's outcome depends on nothing but the script. Each connection
ends by a condition, never a delay: the server drops it right after its
reply, or waits for the client to hang up and keeps what it sent.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from types import TracebackType

from clients import Target
from ws_stream import accept_key

# Seconds any wait on the other side may take before the test fails.
PATIENCE = 5.0


@dataclass(frozen=True)
class Reply:
    """The bytes one connection gets after its request head.

    `upgrade` puts a 101 answer to the client's own key in front; `drop`
    closes the connection as soon as the bytes are written.
    """

    data: bytes
    upgrade: bool = False
    drop: bool = False


class Loopback:
    """Serve `script` on a free loopback port, one reply a connection."""

    def __init__(self, script: list[Reply]) -> None:
        self.script = script
        self.heads: list[bytes] = []  # each request head, its blank line cut
        self.errors: list[BaseException] = []
        self.target = Target("127.0.0.1", 0)  # its port once it listens
        self._sent: dict[int, bytes] = {}
        self._ended = 0
        self._server: asyncio.Server | None = None
        self._done: asyncio.Event | None = None

    @property
    def sent(self) -> list[bytes]:
        """What each client sent after its head, in connection order."""
        return [self._sent.get(n, b"") for n in range(len(self.heads))]

    async def __aenter__(self) -> Loopback:
        self._done = asyncio.Event()
        if not self.script:
            self._done.set()
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.target = Target("127.0.0.1", self._server.sockets[0].getsockname()[1])
        return self

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        assert self._server is not None and self._done is not None
        self._server.close()
        if kind is None:
            # The run is over only when every connection of the script was.
            async with asyncio.timeout(PATIENCE):
                await self._done.wait()
        await self._server.wait_closed()

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        assert self._done is not None
        try:
            async with asyncio.timeout(PATIENCE):
                await self._answer(reader, writer)
        except Exception as exc:
            self.errors.append(exc)
        finally:
            writer.close()
            self._ended += 1
            if self._ended >= len(self.script):
                self._done.set()

    async def _answer(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        head = (await reader.readuntil(b"\r\n\r\n"))[:-4]
        number = len(self.heads)
        self.heads.append(head)
        if number >= len(self.script):
            raise AssertionError(f"connection {number + 1} is not in the script")

        reply = self.script[number]
        data = _switch(head) + reply.data if reply.upgrade else reply.data
        writer.write(data)
        await writer.drain()
        if not reply.drop:
            # The client hangs up last: reading to its EOF also means the
            # server never closes on unread bytes, which would reset the
            # connection under the client's last reads.
            self._sent[number] = await reader.read()


def _switch(head: bytes) -> bytes:
    """The 101 answer to an upgrade request with this head."""
    key = b""
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"sec-websocket-key":
            key = value.strip()
    return (
        b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
        b"Connection: Upgrade\r\nSec-WebSocket-Accept: " + accept_key(key) + b"\r\n\r\n"
    )
