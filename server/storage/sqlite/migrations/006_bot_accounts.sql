-- Version 6: a professional account may be an advice bot (the built-in one, or a health
-- service's own bot engine connecting with a bot token). Clients are always told so.
ALTER TABLE professionals ADD COLUMN bot INTEGER NOT NULL DEFAULT 0;
