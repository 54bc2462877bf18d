"""Bot accounts: the built-in advice bot's, and those a service adds for its own bot engine
(``kanava add-bot``). A bot is a professional account flagged ``bot`` with role ``bot``, in the
bot team, which assigns automatically; nobody signs in as one with a password.

Plain data, no I/O: the CLI, the hub's bot and the record entries (which leave the bot's lines
out of a professional's record) share it without importing the hub.
"""

from __future__ import annotations

from server.core.model import AssignMode, Professional, Team

__all__ = [
    "BOT_CAPACITY",
    "BOT_ID",
    "BOT_NAME",
    "BOT_TEAM",
    "bot_account",
    "bot_team",
]

BOT_ID = "p_bot"
BOT_TEAM = "bot"
BOT_NAME = "Neuvontabotti"
#: The built-in bot takes every chat: its answers cost no one's time, so whether it answers
#: must not depend on how many chats strangers have opened. What its chats cost (memory) is
#: bounded by the limits per address and the idle close of abandoned chats instead.
BOT_CAPACITY = 2**31 - 1


def bot_team() -> Team:
    """The team of bot accounts (it assigns automatically)."""
    return Team(BOT_TEAM, BOT_NAME, AssignMode.AUTO)


def bot_account(
    account_id: str = BOT_ID,
    username: str = "neuvontabotti",
    display_name: str = BOT_NAME,
    capacity: int = BOT_CAPACITY,
) -> Professional:
    """A bot's account; by default the built-in advice bot's."""
    return Professional(
        id=account_id,
        username=username,
        display_name=display_name,
        title="bot",
        capacity=capacity,
        teams=(BOT_TEAM,),
        password_hash="!",  # never matches: nobody signs in as a bot with a password
        bot=True,
        role="bot",
    )
