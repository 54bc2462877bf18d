"""What every part that speaks to people shares: the languages Kanava speaks, and the time zone
its services keep.

Finnish and Swedish are Finland's official languages, English serves everyone else; every text
a person reads exists in all three. Service hours, record entries and ages are counted in
Helsinki time, whatever the server's own clock zone.
"""

from __future__ import annotations

from zoneinfo import ZoneInfo

__all__ = ["HELSINKI", "LANGUAGES"]

#: The languages of every text a person reads, the default first.
LANGUAGES = ("fi", "sv", "en")

#: The time zone of the services (and of ages and dates in record entries).
HELSINKI = ZoneInfo("Europe/Helsinki")
