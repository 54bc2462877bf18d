"""Everything that touches a database, and nothing else does: SQL lives only here.

:mod:`server.storage.sqlite` is the embedded store (one SQLite file, WAL, group commit, its
migrations, retention and backups)."""
