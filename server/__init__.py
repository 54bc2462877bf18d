"""Kanava's server: the aiohttp application around the sans-I/O protocol, one package per
concern. ``app`` composes them; ``cli`` runs it; see the README's layout table.

- ``core``: the domain (model, routing, ids, clock, errors, configuration files)
- ``hub``: decide, persist, publish
- ``storage``: the only place with SQL (``storage.sqlite``)
- ``bus``: fan-out between connections
- ``ws``: the websocket endpoints and connections
- ``intake``: questionnaires, triage, identification, the reception
- ``console``: the professional console's HTTP side, records, canned responses
- ``bot``: the advice bot
- ``guard``: client addresses, limits, rate limits, security headers
- ``ops``: health checks, demo data
"""
