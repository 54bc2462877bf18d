-- Version 7: the professional console.
--
-- Roles: a professional is a nurse or a doctor; a supervisor may also read the access log; an
-- admin manages accounts. An account may sign in through the organisation's OpenID Connect
-- provider (its subject), besides its password.
ALTER TABLE professionals ADD COLUMN role TEXT NOT NULL DEFAULT 'nurse'
    CHECK (role IN ('nurse', 'doctor', 'supervisor', 'admin', 'bot'));
UPDATE professionals SET role = 'doctor' WHERE title = 'doctor';
UPDATE professionals SET role = 'bot' WHERE bot = 1;
ALTER TABLE professionals ADD COLUMN oidc_subject TEXT;
CREATE UNIQUE INDEX professionals_oidc_subject ON professionals(oidc_subject)
    WHERE oidc_subject IS NOT NULL;

-- What the console shows about a chat's path: where the advice bot's part ends, how it came
-- to its professional (a transfer with a note, an escalation to a doctor).
ALTER TABLE conversations ADD COLUMN bot_seq INTEGER NOT NULL DEFAULT 0;
ALTER TABLE conversations ADD COLUMN handover TEXT;
ALTER TABLE conversations ADD COLUMN escalated INTEGER NOT NULL DEFAULT 0;

-- A professional's unsent text per conversation: it survives a reload and a pane switch.
CREATE TABLE drafts (
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    professional_id TEXT NOT NULL REFERENCES professionals(id),
    text            TEXT NOT NULL,
    updated_at      INTEGER NOT NULL,
    PRIMARY KEY (conversation_id, professional_id)
) WITHOUT ROWID;

-- Who opened whose conversation, when and why: the client's right to know who has seen their
-- data. client_key is the keyed fingerprint of the client's identity code (never the code).
-- Rows can be added, never changed or removed.
CREATE TABLE access_log (
    id                INTEGER PRIMARY KEY,
    at                INTEGER NOT NULL,
    professional_id   TEXT NOT NULL,
    professional_name TEXT NOT NULL,
    conversation_id   TEXT NOT NULL,
    client_key        TEXT,
    client_name       TEXT,
    reason            TEXT NOT NULL
);
CREATE INDEX access_log_client ON access_log(client_key, at) WHERE client_key IS NOT NULL;
CREATE INDEX access_log_conversation ON access_log(conversation_id, at);
CREATE TRIGGER access_log_is_append_only_update BEFORE UPDATE ON access_log
BEGIN
    SELECT RAISE(ABORT, 'the access log is append-only');
END;
CREATE TRIGGER access_log_is_append_only_delete BEFORE DELETE ON access_log
BEGIN
    SELECT RAISE(ABORT, 'the access log is append-only');
END;

-- Patient-record entries written when a chat ends. Each save is a new version.
CREATE TABLE records (
    record_id       TEXT NOT NULL,
    version         INTEGER NOT NULL,
    conversation_id TEXT NOT NULL REFERENCES conversations(id),
    professional_id TEXT NOT NULL,
    saved_at        INTEGER NOT NULL,
    outcome         TEXT NOT NULL,
    reason          TEXT NOT NULL,
    symptoms        TEXT NOT NULL,
    advice          TEXT NOT NULL,
    follow_up       TEXT NOT NULL,
    PRIMARY KEY (record_id, version)
);
CREATE INDEX records_conversation ON records(conversation_id, version);
