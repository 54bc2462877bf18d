-- Version 8: the client's feedback on a chat: a rating from 1 to 5 and a comment, both
-- optional, for reporting. One row per conversation; sending again replaces it.
CREATE TABLE feedback (
    conversation_id TEXT PRIMARY KEY REFERENCES conversations(id),
    at              INTEGER NOT NULL,
    rating          INTEGER CHECK (rating BETWEEN 1 AND 5),
    comment         TEXT,
    team_id         TEXT,
    language        TEXT
);
CREATE INDEX feedback_at ON feedback(at);
