from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from kanava_testing import Chat, KanavaServer  # noqa: E402

from protocol import JSON, MSGPACK, Codec  # noqa: E402


@pytest.fixture
def server_factory(tmp_path: Path) -> Iterator[Any]:
    """Start servers with chosen settings; each is stopped after the test."""
    started: list[KanavaServer] = []

    def start(**settings: Any) -> KanavaServer:
        database = settings.pop("database", None) or tmp_path / f"kanava{len(started)}.sqlite3"
        server = KanavaServer(database, **settings)
        started.append(server.start())
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def server(server_factory: Any) -> KanavaServer:
    # Generous rate limits: tests send bursts; the limits have tests of their own.
    server: KanavaServer = server_factory(client_rate_burst=1000, pro_rate_burst=1000)
    return server


@pytest.fixture(params=[JSON, MSGPACK], ids=["json", "msgpack"])
def codec(request: pytest.FixtureRequest) -> Codec:
    codec: Codec = request.param
    return codec


@pytest.fixture
async def chat(server: KanavaServer, codec: Codec) -> AsyncIterator[Chat]:
    helper = Chat(server, codec)
    yield helper
    await helper.close_all()
