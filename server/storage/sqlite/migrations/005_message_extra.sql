-- Version 5: a chat message may carry more than text. The advice bot's answers have quick
-- replies (buttons) and actions (links and phone numbers), kept as JSON so that a resumed or
-- transferred chat shows them again.
ALTER TABLE messages ADD COLUMN extra TEXT;
