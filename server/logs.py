"""Kanava's logs: one JSON object per line, with ids, never what people wrote.

Log lines name conversations, professionals and records by their ids. Message texts, names,
answers and identity codes are never passed to a logger by Kanava's code; as a second line of
defence, :class:`Redact` replaces anything shaped like a Finnish personal identity code in
every record (aiohttp's access log and exception texts included) before it is written.

The HTTP access log (:class:`AccessLog`) names the path of each request, never its query
string: sign-in and identification pass tickets, codes and states there.

``log_format = "text"`` keeps the classic one-line form for reading in a terminal.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.web_request import BaseRequest
from aiohttp.web_response import StreamResponse

from server.guard.client_address import PROXY_TRUST
from server.intake.personal_code import redact

__all__ = ["AccessLog", "JsonFormatter", "Redact", "configure_logging"]

_REDACTED = "[identity code]"


class Redact(logging.Filter):
    """Removes identity codes from the message, its arguments and the exception text."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        clean = redact(message, _REDACTED)
        if clean != message or record.args:
            record.msg, record.args = clean, None
        if record.exc_info and record.exc_info[1] is not None:
            record.exc_text = redact(
                logging.Formatter().formatException(record.exc_info), _REDACTED
            )
            record.exc_info = None
        return True


class AccessLog(AbstractAccessLogger):
    """One line per HTTP request: the method, the path, the status, the size and the time.

    Never the query string, of any route: ``/identity/start?ticket=…``,
    ``/identity/callback?code=…&state=…`` and the like carry one-time secrets that would
    let whoever reads the log finish a sign-in. Nor the Referer (the previous page's
    address, query string and all) or the User-Agent. aiohttp's default format (``%r``)
    writes the whole request line.
    """

    def log(self, request: BaseRequest, response: StreamResponse, time: float) -> None:
        # The person's address, read through the trusted proxies (not the proxy's own).
        app = request.app if isinstance(request, web.Request) else None
        trust = app.get(PROXY_TRUST) if app is not None else None
        address = request.remote
        if trust is not None:
            address = trust.client(request.remote, list(request.headers.getall(trust.header, [])))
        self.logger.info(
            '%s "%s %s" %d %d %.1fms',
            address or "-",
            request.method,
            request.path,
            response.status,
            response.body_length,
            time * 1000,
        )

    @property
    def enabled(self) -> bool:
        return self.logger.isEnabledFor(logging.INFO)


class JsonFormatter(logging.Formatter):
    """``{"at": …, "level": …, "logger": …, "message": …}`` plus any ``extra`` ids."""

    _STANDARD = frozenset(
        logging.LogRecord("", 0, "", 0, "", None, None).__dict__.keys()
        | {"message", "asctime", "taskName"}
    )

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "at": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in record.__dict__.items():
            if key not in self._STANDARD and not key.startswith("_"):
                out[key] = value if isinstance(value, (str, int, float, bool)) else str(value)
        if record.exc_text:
            out["exception"] = record.exc_text
        elif record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, ensure_ascii=False)


def configure_logging(level: str, log_format: str = "json") -> None:
    """Send every log record, redacted, to standard error in the chosen format."""
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(Redact())
    if log_format == "text":
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    else:
        handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
