"""Finnish personal identity codes (henkilötunnus): validation, birth date, age, masking, and
protection at rest.

A code reads ``DDMMYYCNNNT``: birth date, century sign, individual number, check character.
Since 2023 the century has several signs (``-`` or ``Y X W V U`` for the 1900s, ``A`` or
``B C D E F`` for the 2000s, ``+`` for the 1800s), so code that parses the sign must not assume
one per century. python-stdnum checks the format, the date and the check character; it does not
give the birth date, which :func:`birth_date` reads from the sign.

Individual numbers 900–999 are temporary and test codes (the Digital and Population Data
Services Agency's test persons use them). Production refuses them; development and tests allow
them with ``allow_test_codes=True``. Kanava's tests and development data use only such codes.

The code is a secret: logs get :func:`mask`, storage gets :meth:`CodeProtector.protect`
(AES-256-GCM with a random nonce) or, to find a returning person without decrypting anything,
:meth:`CodeProtector.fingerprint` (a keyed hash).

Errors::

    ValueError
    └── InvalidIdentityCode   format, date, individual number or check character is wrong
"""

from __future__ import annotations

import base64
import calendar
import hashlib
import hmac
import os
import re
import secrets
import unicodedata
from datetime import date
from pathlib import Path

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from stdnum.exceptions import InvalidChecksum, InvalidComponent, InvalidFormat, ValidationError
from stdnum.fi import hetu

__all__ = [
    "CodeProtector",
    "InvalidIdentityCode",
    "age_on",
    "birth_date",
    "is_test_code",
    "is_valid",
    "load_or_create_key",
    "mask",
    "read_secret_file",
    "redact",
    "validate",
    "write_secret_file",
]

_CENTURY = {"+": 1800} | dict.fromkeys("-YXWVU", 1900) | dict.fromkeys("ABCDEF", 2000)
_TOKEN_PREFIX = "hetu1:"
_KEY_BYTES = 32


# Written by people, a code's separator is not always the ASCII hyphen: word processors and
# phones turn it into a typographic dash (U+2010–U+2015), a minus sign (U+2212) or a small
# or full-width hyphen (U+FE63, U+FF0D); some leave it out or put spaces around it.
DASHES = "-\u2010\u2011\u2012\u2013\u2014\u2015\u2212\ufe63\uff0d"
_CHECK_CHARACTERS = "0123456789ABCDEFHJKLMNPRSTUVWXY"
_GAP = r"[^\S\r\n]{0,3}"  # spaces (also no-break ones) on one line
# A century sign or a dash, also in full width (U+FF0B, U+FF21–U+FF26, U+FF35–U+FF39).
_SIGN = rf"[+{re.escape(DASHES)}A-FU-Y\uff0b\uff21-\uff26\uff35-\uff39]"
# Six digits, a sign (or none), three digits and a check character, standing apart from other
# letters and digits. Any Unicode digits count, full-width ones too.
_CODE_IN_TEXT = re.compile(
    rf"(?<![^\W_])(\d{{6}}){_GAP}({_SIGN}?){_GAP}(\d{{3}})(\w)(?![^\W_])", re.IGNORECASE
)


def _key(digits: str, check: str) -> str:
    """Birth date, individual number and check character in ASCII upper case."""
    return "".join(str(unicodedata.digit(c)) for c in digits) + _ascii(check)


def _ascii(char: str) -> str:
    return unicodedata.normalize("NFKC", char).upper()


def redact(text: str, replacement: str, code: str | None = None) -> str:
    """``text`` with identity codes replaced by ``replacement``.

    Replaced: anything shaped like a code with a century sign or a dash (any of
    :data:`DASHES`) between its parts, spaces around it allowed; and ``code`` itself (the
    person's own, when known) in any spelling: with any sign or dash, with spaces, or with
    no separator at all. Ten digits alone are not taken for someone else's code: they are
    as likely a phone number.
    """
    own = None
    if code:
        compact = re.sub(rf"[\s{re.escape(DASHES)}+]", "", code)
        if len(compact) == 11 and compact[6].upper() in "ABCDEFUVWXY":
            compact = compact[:6] + compact[7:]
        if len(compact) == 10 and compact[:9].isdigit():
            own = compact.upper()

    def replace(match: re.Match[str]) -> str:
        digits, sign, individual, check = match.groups()
        key = _key(digits + individual, check)
        if key == own or (sign and _ascii(check) in _CHECK_CHARACTERS):
            return replacement
        return match[0]

    text = _CODE_IN_TEXT.sub(replace, text)
    if code:  # whatever else the caller calls the code, verbatim
        text = re.sub(re.escape(code.strip()), replacement, text, flags=re.IGNORECASE)
    return text


class InvalidIdentityCode(ValueError):
    """Not a valid personal identity code; ``reason`` says what is wrong, never the code."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def validate(code: str, *, allow_test_codes: bool = False) -> str:
    """The code in its canonical form (upper case, no surrounding space), or raise."""
    if not isinstance(code, str):
        raise InvalidIdentityCode("the personal identity code is not text")
    try:
        canonical: str = hetu.validate(code, allow_temporary=True)
    except InvalidChecksum as exc:
        raise InvalidIdentityCode("the check character does not match") from exc
    except InvalidComponent as exc:
        raise InvalidIdentityCode("the birth date or individual number is impossible") from exc
    except (InvalidFormat, ValidationError) as exc:
        raise InvalidIdentityCode("not in the form DDMMYYCNNNT") from exc
    # stdnum would lump test codes into "invalid component"; checked here for a clear reason.
    if is_test_code(canonical) and not allow_test_codes:
        raise InvalidIdentityCode("a temporary or test code (individual number 900-999)")
    return canonical


def is_valid(code: str, *, allow_test_codes: bool = False) -> bool:
    try:
        validate(code, allow_test_codes=allow_test_codes)
    except InvalidIdentityCode:
        return False
    return True


def is_test_code(code: str) -> bool:
    """Whether the individual number is in the temporary/test range 900–999."""
    individual = hetu.compact(code)[7:10]
    return individual.isdigit() and int(individual) >= 900


def birth_date(code: str) -> date:
    """The birth date the code states (validates the code, test codes included)."""
    canonical = validate(code, allow_test_codes=True)
    century = _CENTURY[canonical[6]]
    return date(century + int(canonical[4:6]), int(canonical[2:4]), int(canonical[0:2]))


def age_on(code: str, day: date) -> int:
    """Completed years on ``day``.

    Someone born on 29 February has their birthday on 28 February in common years: Finnish
    time-limit law (150/1930, 3 §) ends a period on the last day of the month when the month
    has no matching day.
    """
    born = birth_date(code)
    if born.month == 2 and born.day == 29 and not calendar.isleap(day.year):
        anniversary = (2, 28)
    else:
        anniversary = (born.month, born.day)
    return day.year - born.year - ((day.month, day.day) < anniversary)


def mask(code: str) -> str:
    """``"131052-****"``: the birth date and century sign stay readable, the rest is hidden.

    Anything that is not a well-formed code is hidden entirely, since it may still be one.
    """
    compact = hetu.compact(code) if isinstance(code, str) else ""
    if len(compact) != 11 or not compact[:6].isdigit() or compact[6] not in _CENTURY:
        return "***********"
    return compact[:7] + "****"


class CodeProtector:
    """Encrypts codes for storage and computes lookup fingerprints, from one 32-byte key.

    Two keys are derived with HKDF so the encryption key is never used as a MAC key.
    Tokens read ``hetu1:<base64url(nonce ‖ ciphertext ‖ tag)>``; the prefix names the format so
    a later scheme can be added beside it.
    """

    def __init__(self, key: bytes) -> None:
        if len(key) != _KEY_BYTES:
            raise ValueError(f"the key must be {_KEY_BYTES} bytes, not {len(key)}")
        self._aead = AESGCM(_derive(key, b"kanava personal code encryption v1"))
        self._mac_key = _derive(key, b"kanava personal code fingerprint v1")

    def protect(self, code: str) -> str:
        nonce = secrets.token_bytes(12)
        sealed = self._aead.encrypt(nonce, code.encode("ascii"), _TOKEN_PREFIX.encode())
        return _TOKEN_PREFIX + base64.urlsafe_b64encode(nonce + sealed).decode("ascii")

    def reveal(self, token: str) -> str:
        """The code inside ``token``; ``ValueError`` if it was not made with this key."""
        if not token.startswith(_TOKEN_PREFIX):
            raise ValueError("not a protected personal identity code (unknown prefix)")
        try:
            raw = base64.urlsafe_b64decode(token[len(_TOKEN_PREFIX) :].encode("ascii"))
            plain = self._aead.decrypt(raw[:12], raw[12:], _TOKEN_PREFIX.encode())
        except (InvalidTag, ValueError) as exc:
            raise ValueError("the protected code is damaged or was made with another key") from exc
        return plain.decode("ascii")

    def fingerprint(self, code: str) -> str:
        """A stable keyed hash of the canonical code, to find a person without decrypting."""
        canonical = hetu.compact(code)
        digest = hmac.new(self._mac_key, canonical.encode("ascii"), hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode("ascii").rstrip("=")


def _derive(key: bytes, info: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=info).derive(key)


def load_or_create_key(path: Path) -> bytes:
    """The 32-byte key stored at ``path`` (base64 text), created with mode 0600 if missing.

    A key file that others can read is refused rather than used: it protects every code.
    """
    path = Path(path)
    if not path.exists():
        key = secrets.token_bytes(_KEY_BYTES)
        write_secret_file(path, base64.b64encode(key) + b"\n")
    key = base64.b64decode(read_secret_file(path).strip(), validate=True)
    if len(key) != _KEY_BYTES:
        raise ValueError(f"{path} does not hold a {_KEY_BYTES}-byte key")
    return key


def write_secret_file(path: Path, content: bytes) -> None:
    """Create ``path`` with mode 0600 holding ``content``, all or nothing.

    The content is written to a private temporary file and linked into place, so a concurrent
    reader never sees half a key, and a concurrent creator's key is kept rather than replaced.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        try:
            os.link(temporary, path)
        except FileExistsError:
            pass
    finally:
        temporary.unlink(missing_ok=True)


def read_secret_file(path: Path) -> bytes:
    """The content of a key file, refused if group or others may read or write it."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        raise PermissionError(f"{path} is open to others (mode {mode:o}); chmod 600 it")
    return path.read_bytes()
