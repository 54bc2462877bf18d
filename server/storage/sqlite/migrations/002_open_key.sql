-- Version 2: conversation.open may carry a client-chosen open_id, so that a retry after a
-- dropped connection returns the same conversation instead of queueing a second one.
ALTER TABLE conversations ADD COLUMN open_key_hash TEXT;
CREATE UNIQUE INDEX conversations_open_key ON conversations(open_key_hash)
    WHERE open_key_hash IS NOT NULL;
