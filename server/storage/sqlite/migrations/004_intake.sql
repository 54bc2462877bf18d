-- Version 4: the pre-chat intake. A conversation keeps its triage level, the client's health
-- station, the questionnaire (answers and the summary professionals see) and the identity
-- (JSON; the personal identity code in it only encrypted). Every finished intake is a row of
-- its own, also those that queued nothing: an emergency sent to 112 is on record.
ALTER TABLE conversations ADD COLUMN triage TEXT;
ALTER TABLE conversations ADD COLUMN station_id TEXT;
ALTER TABLE conversations ADD COLUMN intake TEXT;
ALTER TABLE conversations ADD COLUMN identity TEXT;

CREATE TABLE intakes (
    id              TEXT PRIMARY KEY,
    started_at      INTEGER NOT NULL,
    finished_at     INTEGER NOT NULL,
    topic           TEXT NOT NULL,
    language        TEXT NOT NULL,
    triage          TEXT NOT NULL,
    outcome         TEXT NOT NULL,
    answers         TEXT NOT NULL,
    conversation_id TEXT REFERENCES conversations(id)
);
CREATE INDEX intakes_outcome ON intakes(outcome, finished_at);
