"""Kanava's server: the aiohttp application around the sans-I/O protocol.

One module per concern: ``hub`` (decisions), ``conversations`` (the model), ``routing``
(queues and assignment), ``storage`` (SQLite), ``bus`` (fan-out), ``connection`` (one
websocket), ``auth`` (accounts and tokens), ``app`` (HTTP and websocket endpoints).
"""
