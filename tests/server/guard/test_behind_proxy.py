"""Kanava behind a real nginx, configured with the block docs/security.md gives.

A client's own ``X-Forwarded-For`` does not change the address Kanava counts; two people behind
the same proxy are counted apart; and the flood of one does not stop the other.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import websockets
from kanava_testing import KanavaServer, free_port

from protocol import JSON

ROOT = Path(__file__).resolve().parents[3]
NGINX = shutil.which("nginx") or ("/usr/sbin/nginx" if Path("/usr/sbin/nginx").exists() else None)

# CI runs scripts/test, which installs it: there a missing nginx fails instead of skipping.
pytestmark = pytest.mark.skipif(
    NGINX is None and not os.environ.get("CI"),
    reason="nginx is not installed (scripts/test installs Debian's nginx-light)",
)


def documented_nginx_block() -> str:
    """The nginx configuration of docs/security.md, as a city would copy it."""
    text = (ROOT / "docs" / "security.md").read_text(encoding="utf-8")
    match = re.search(r"```nginx\n(.*?)```", text, re.S)
    assert match, "docs/security.md has no nginx block"
    return match.group(1)


@pytest.fixture
def proxied(server_factory: Any, tmp_path: Path) -> Iterator[tuple[KanavaServer, int]]:
    server: KanavaServer = server_factory(trusted_proxies=("127.0.0.1",), max_sockets_per_address=2)
    port = free_port()
    block = documented_nginx_block()
    # Plain http on a loopback port for the test; everything else exactly as documented.
    block = block.replace("listen 443 ssl;", f"listen 127.0.0.1:{port};")
    block = block.replace("127.0.0.1:8080", f"127.0.0.1:{server.port}")
    temp = {name: tmp_path / name for name in ("body", "proxy", "fastcgi", "uwsgi", "scgi")}
    for folder in temp.values():
        folder.mkdir()
    conf = tmp_path / "nginx.conf"
    conf.write_text(
        f"""daemon off;
pid {tmp_path}/nginx.pid;
error_log {tmp_path}/error.log;
worker_processes 1;
events {{ worker_connections 256; }}
http {{
    access_log off;
    client_body_temp_path {temp["body"]};
    proxy_temp_path {temp["proxy"]};
    fastcgi_temp_path {temp["fastcgi"]};
    uwsgi_temp_path {temp["uwsgi"]};
    scgi_temp_path {temp["scgi"]};
{block}
}}
""",
        encoding="utf-8",
    )
    assert NGINX is not None
    proc = subprocess.Popen(
        [NGINX, "-c", str(conf), "-p", str(tmp_path)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                    break
            except OSError:
                if proc.poll() is not None:
                    log = (tmp_path / "error.log").read_text(errors="replace")
                    raise RuntimeError(f"nginx did not start: {log}") from None
                time.sleep(0.05)
        yield server, port
    finally:
        proc.terminate()
        proc.wait(10)


async def through(port: int, source: str, spoof: str | None = None) -> Any:
    headers = {"X-Forwarded-For": spoof} if spoof else {}
    return await websockets.connect(
        f"ws://127.0.0.1:{port}/ws/client",
        subprotocols=[JSON.subprotocol],  # type: ignore[list-item]
        additional_headers=headers,
        local_addr=(source, 0),
        open_timeout=5,
    )


async def test_behind_nginx_each_person_is_counted_apart_and_spoofing_changes_nothing(
    proxied: tuple[KanavaServer, int],
) -> None:
    server, port = proxied
    held = []
    try:
        # Two sockets of the person at 127.0.0.5, each claiming to be someone else.
        held.append(await through(port, "127.0.0.5", spoof="203.0.113.1"))
        held.append(await through(port, "127.0.0.5", spoof="203.0.113.2"))
        with pytest.raises(websockets.InvalidStatus) as refused:
            await through(port, "127.0.0.5", spoof="203.0.113.3")
        assert refused.value.response.status_code == 429
        # Another person behind the same proxy is not affected.
        held.append(await through(port, "127.0.0.6"))
        held.append(await through(port, "127.0.0.6"))
        # Without a trusted proxy in between, the proxy itself would be one person: the
        # direct peer Kanava sees for all of them is nginx at 127.0.0.1.
        assert server.settings.trusted_proxies == ("127.0.0.1",)
    finally:
        for ws in held:
            await ws.close()
