"""Fixtures of the intake's websocket tests: a server that requires the intake, open at any
hour, without identification, and a desk of clients and professionals on it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest
from kanava_testing import Chat, KanavaServer

from protocol import Codec


@pytest.fixture
def intake_server(server_factory: Any) -> KanavaServer:
    server: KanavaServer = server_factory(
        intake_required=True, always_open=True, client_rate_burst=1000, pro_rate_burst=1000
    )
    return server


@pytest.fixture
async def desk(intake_server: KanavaServer, codec: Codec) -> AsyncIterator[Chat]:
    helper = Chat(intake_server, codec)
    yield helper
    await helper.close_all()
