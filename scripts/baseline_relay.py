#!/usr/bin/env python3
"""A bare aiohttp websocket relay: the physical limit of Kanava's stack on this machine.

Two websockets that open ``/relay/<pair-id>`` with the same ``pair-id`` are paired; from then
on every frame one sends is forwarded, unchanged and with the same frame type, to the other.
No validation, no storage, no acknowledgement: the same aiohttp server, the same event loop,
the same kernel sockets as Kanava, and nothing else. ``scripts/loadtest.py --target relay``
sends this relay exactly the traffic it sends Kanava (same frames, same rates, same number
of pairs), and ``scripts/bench`` reports Kanava's figures as a ratio of the relay's.

The handshake: when the second socket of a pair arrives, the relay sends both sockets one text
frame ``{"type":"relay.paired","pair":"<pair-id>"}``; a third socket for a full pair is closed
with code 4409. When one socket of a pair closes, the relay closes the other.

Usage::

    python scripts/baseline_relay.py --port 8090            # default event loop (asyncio)
    python scripts/baseline_relay.py --port 8090 --uvloop   # uvloop, like Kanava's default
    taskset -c 0 python scripts/baseline_relay.py ...       # pinned to one core (scripts/bench)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys

from aiohttp import WSMsgType, web

PAIRED_FULL = 4409
PAIRS: web.AppKey[dict[str, list[web.WebSocketResponse]]] = web.AppKey("pairs", dict)
# Kanava's subprotocols: a client offers the relay exactly what it offers Kanava.
PROTOCOLS = ("kanava.v1.json", "kanava.v1.msgpack")


async def relay(request: web.Request) -> web.StreamResponse:
    pair_id = request.match_info["pair_id"]
    pairs = request.app[PAIRS]
    ws = web.WebSocketResponse(
        protocols=PROTOCOLS, compress=False, decode_text=False, max_msg_size=0
    )
    await ws.prepare(request)
    members = pairs.setdefault(pair_id, [])
    if len(members) >= 2:
        await ws.close(code=PAIRED_FULL, message=b"pair is full")
        return ws
    members.append(ws)
    if len(members) == 2:
        hello = json.dumps({"type": "relay.paired", "pair": pair_id}).encode()
        for member in members:
            await member.send_frame(hello, WSMsgType.TEXT)
    try:
        async for frame in ws:
            kind = frame.type
            if kind is WSMsgType.TEXT or kind is WSMsgType.BINARY:
                if len(members) == 2:
                    peer = members[1] if members[0] is ws else members[0]
                    if not peer.closed:
                        await peer.send_frame(frame.data, kind)
            elif kind is WSMsgType.ERROR:
                break
    finally:
        if ws in members:
            members.remove(ws)
        for other in list(members):
            if not other.closed:
                await other.close()
        if not members:
            pairs.pop(pair_id, None)
    return ws


async def healthz(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "pairs": len(request.app[PAIRS])})


def build_app() -> web.Application:
    app = web.Application()
    app[PAIRS] = {}
    app.router.add_get("/relay/{pair_id}", relay)
    app.router.add_get("/healthz", healthz)
    return app


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Bare aiohttp websocket relay (pairs of sockets, every frame forwarded to "
        "the peer; no validation, no storage). The baseline of scripts/bench."
    )
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (127.0.0.1)")
    parser.add_argument("--port", type=int, default=8090, help="port to listen on (8090)")
    parser.add_argument(
        "--uvloop",
        action="store_true",
        help="run on uvloop instead of the default asyncio event loop",
    )
    args = parser.parse_args(argv)
    if args.uvloop:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    web.run_app(
        build_app(),
        host=args.host,
        port=args.port,
        print=lambda text: print(text, file=sys.stderr),
        access_log=None,
        shutdown_timeout=2,
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
