"""A TCP proxy between the peers and the server that cuts connections on command.

Every connection a peer opens to the proxy gets its own connection to the server, and two
pumps copy bytes both ways. :meth:`FaultyProxy.cut` marks all the connections, or a random
half of them, to be cut: the next chunk that arrives in the chosen direction (towards the
server, towards the peer, or either, drawn for each connection) is forwarded only in part (a
random prefix, so usually in the middle of a websocket frame, and sometimes nothing) and then
both sockets are closed at once: half of the time with a TCP reset (``SO_LINGER``
0), half of the time with a bare FIN, never with a websocket close frame. A connection on
which nothing flows for a moment after the mark is cut as it is. The server keeps running; it
sees a truncated frame and a dead socket, as when a mobile network drops.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import socket
import struct
from collections import Counter

__all__ = ["FaultyProxy"]

IDLE_CUT_SECONDS = 0.5


class _Link:
    def __init__(self, down: asyncio.StreamWriter, up: asyncio.StreamWriter) -> None:
        self.down = down  # to the peer
        self.up = up  # to the server
        # The directions in which the next chunk is cut short: {"up"}, {"down"} or both.
        self.cutting: set[str] = set()
        self.closed = False


class FaultyProxy:
    def __init__(self, upstream_port: int, rng: random.Random, port: int = 0) -> None:
        self.upstream_port = upstream_port
        self.port = port
        self.rng = rng
        self.links: set[_Link] = set()
        self.stats: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self) -> FaultyProxy:
        self._server = await asyncio.start_server(self._accept, "127.0.0.1", self.port)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
        for link in list(self.links):
            self._abort(link, reset=True)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    def cut(self, fraction: float) -> int:
        """Mark ``fraction`` of the open connections to be cut; returns how many."""
        links = [link for link in self.links if not link.cutting and not link.closed]
        chosen = self.rng.sample(links, round(len(links) * fraction)) if links else []
        for link in chosen:
            # Towards the server a cut loses a request; towards the peer it loses what the
            # server answered (an acknowledgement of a message already stored, say).
            link.cutting = self.rng.choice(({"up"}, {"down"}, {"up", "down"}))
            task = asyncio.create_task(self._cut_if_idle(link))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        self.stats["cut_connections"] += len(chosen)
        return len(chosen)

    async def _cut_if_idle(self, link: _Link) -> None:
        await asyncio.sleep(IDLE_CUT_SECONDS)
        if not link.closed:
            self.stats["cut_idle"] += 1
            self._abort(link, reset=self.rng.random() < 0.5)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.upstream_port)
        except OSError:
            self.stats["upstream_refused"] += 1
            writer.transport.abort()
            return
        link = _Link(writer, up_writer)
        self.links.add(link)
        self.stats["connections"] += 1
        try:
            await asyncio.gather(
                self._pump(link, "up", reader, up_writer),
                self._pump(link, "down", up_reader, writer),
            )
        finally:
            self.links.discard(link)
            self._abort(link, reset=False)

    async def _pump(
        self,
        link: _Link,
        direction: str,
        source: asyncio.StreamReader,
        target: asyncio.StreamWriter,
    ) -> None:
        try:
            while not link.closed:
                data = await source.read(65536)
                if not data:
                    break
                if direction in link.cutting:
                    keep = self.rng.randrange(len(data))
                    if keep:
                        target.write(data[:keep])
                        with contextlib.suppress(OSError, ConnectionError):
                            await asyncio.wait_for(target.drain(), 0.5)
                        self.stats["cut_mid_chunk"] += 1
                        self.stats[f"cut_mid_chunk_{direction}"] += 1
                    else:
                        self.stats["cut_at_chunk_start"] += 1
                    self._abort(link, reset=self.rng.random() < 0.5)
                    return
                target.write(data)
                await target.drain()
        except (TimeoutError, OSError, ConnectionError):
            pass
        finally:
            # One side ended: end the other too (a proxy has no half-open connections).
            self._abort(link, reset=False)

    def _abort(self, link: _Link, *, reset: bool) -> None:
        if link.closed:
            return
        link.closed = True
        for writer in (link.down, link.up):
            transport = writer.transport
            if reset:
                sock = transport.get_extra_info("socket")
                if sock is not None:
                    with contextlib.suppress(OSError):
                        sock.setsockopt(
                            socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0)
                        )
                transport.abort()
            else:
                transport.close()
        if reset:
            self.stats["resets"] += 1
