"""The SQLite store: :class:`~server.storage.sqlite.store.Storage`, composed of one module per
concern (see :mod:`~server.storage.sqlite.store`), and its migrations."""
