-- Version 3: the idempotency index goes. The single writer already knows every stored
-- (sender_role, sender_id, msg_id) of a conversation (it loads them from the conversation's
-- rows before its first write there), so the index only doubled the pages each message
-- writes: with many conversations, every message dirtied one table page and one index page.
DROP INDEX messages_idempotency;
