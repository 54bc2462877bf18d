-- Kanava schema, version 1: teams, professionals, sessions, conversations, messages, audit.

CREATE TABLE teams (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    assign_mode TEXT NOT NULL CHECK (assign_mode IN ('pick', 'auto'))
);

CREATE TABLE professionals (
    id            TEXT PRIMARY KEY,
    username      TEXT NOT NULL UNIQUE,
    display_name  TEXT NOT NULL,
    title         TEXT,
    password_hash TEXT NOT NULL,
    capacity      INTEGER NOT NULL CHECK (capacity >= 0)
);

CREATE TABLE professional_teams (
    professional_id TEXT NOT NULL REFERENCES professionals(id),
    team_id         TEXT NOT NULL REFERENCES teams(id),
    PRIMARY KEY (professional_id, team_id)
);

CREATE TABLE sessions (
    token_hash      TEXT PRIMARY KEY,
    professional_id TEXT NOT NULL REFERENCES professionals(id),
    created_at      INTEGER NOT NULL,
    expires_at      INTEGER NOT NULL
);

CREATE TABLE conversations (
    id                    TEXT PRIMARY KEY,
    token_hash            TEXT NOT NULL UNIQUE,
    team_id               TEXT NOT NULL REFERENCES teams(id),
    state                 TEXT NOT NULL CHECK (state IN ('queued', 'assigned', 'closed')),
    client_name           TEXT,
    topic                 TEXT,
    language              TEXT,
    professional_id       TEXT REFERENCES professionals(id),
    queue_rank            REAL,
    created_at            INTEGER NOT NULL,
    updated_at            INTEGER NOT NULL,
    queued_at             INTEGER,
    closed_at             INTEGER,
    closed_by             TEXT,
    reason                TEXT,
    read_client_seq       INTEGER NOT NULL DEFAULT 0,
    read_professional_seq INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX conversations_open ON conversations(state) WHERE state != 'closed';

-- seq is per conversation, gap-free, assigned by the single writer in the storing transaction.
CREATE TABLE messages (
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    seq             INTEGER NOT NULL,
    msg_id          TEXT NOT NULL,
    sender_role     TEXT NOT NULL,
    sender_id       TEXT NOT NULL,
    sender_name     TEXT NOT NULL,
    text            TEXT NOT NULL,
    sent_at         INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, seq)
) WITHOUT ROWID;
CREATE UNIQUE INDEX messages_idempotency
    ON messages(conversation_id, sender_role, sender_id, msg_id);

-- Append-only: who did what to which conversation, and when.
CREATE TABLE audit_events (
    id              INTEGER PRIMARY KEY,
    at              INTEGER NOT NULL,
    conversation_id TEXT,
    actor_role      TEXT NOT NULL,
    actor_id        TEXT NOT NULL,
    action          TEXT NOT NULL,
    detail          TEXT
);
CREATE INDEX audit_events_conversation ON audit_events(conversation_id, at);
