"""The SQLite store: :class:`~server.storage.sqlite.store.Storage` and its migrations."""
