"""Personal identity codes: validation, birth date, age, masking, protection at rest.

Every code here is a fictitious test code (individual number 900–999) computed from the
published check-character algorithm by :func:`make_code`; none belongs to a real person.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from server.intake.personal_code import (
    CodeProtector,
    InvalidIdentityCode,
    age_on,
    birth_date,
    is_test_code,
    is_valid,
    load_or_create_key,
    mask,
    validate,
)

CHECK = "0123456789ABCDEFHJKLMNPRSTUVWXY"
CENTURY = {"+": 1800} | dict.fromkeys("-YXWVU", 1900) | dict.fromkeys("ABCDEF", 2000)


def make_code(born: date, sign: str, individual: int) -> str:
    """A test code for ``born``: only the 900–999 range, so never a real person's."""
    assert 900 <= individual <= 999
    assert 0 <= born.year - CENTURY[sign] <= 99
    digits = f"{born:%d%m}{born.year % 100:02d}"
    return f"{digits}{sign}{individual}{CHECK[int(f'{digits}{individual}') % 31]}"


@pytest.mark.parametrize(
    ("born", "sign"),
    [
        (date(1895, 7, 1), "+"),
        (date(1952, 10, 13), "-"),
        (date(1952, 10, 13), "Y"),
        (date(1961, 1, 31), "X"),
        (date(1970, 12, 24), "W"),
        (date(1988, 5, 5), "V"),
        (date(1999, 9, 9), "U"),
        (date(2000, 1, 1), "A"),
        (date(2010, 2, 28), "B"),
        (date(2015, 3, 3), "C"),
        (date(2019, 4, 30), "D"),
        (date(2021, 6, 6), "E"),
        (date(2023, 8, 8), "F"),
    ],
)
def test_every_century_sign_gives_the_right_birth_date(born: date, sign: str) -> None:
    """The 2023 signs Y–U and B–F mean the same centuries as '-' and 'A'."""
    code = make_code(born, sign, 931)
    assert validate(code, allow_test_codes=True) == code
    assert birth_date(code) == born


def test_a_minor_becomes_an_adult_on_the_eighteenth_birthday() -> None:
    """Born 2008-06-15 (sign A): 17 the day before, 18 on the day."""
    code = make_code(date(2008, 6, 15), "A", 952)
    assert age_on(code, date(2026, 6, 14)) == 17
    assert age_on(code, date(2026, 6, 15)) == 18
    assert age_on(code, date(2026, 12, 31)) == 18


def test_the_1900s_sign_y_counts_from_the_1900s() -> None:
    """Born 1999-12-31 with Y: an adult of 26 on the last day of 2025, not a child of 2099."""
    code = make_code(date(1999, 12, 31), "Y", 908)
    assert age_on(code, date(2025, 12, 30)) == 25
    assert age_on(code, date(2025, 12, 31)) == 26


def test_the_2000s_signs_agree_on_age() -> None:
    """A and its 2023 siblings B–F give the same age for the same birth date."""
    ages = {age_on(make_code(date(2009, 1, 20), sign, 944), date(2027, 1, 19)) for sign in "ABCDEF"}
    assert ages == {17}


def test_leap_day_birthday_falls_on_28_february_in_common_years() -> None:
    """Born 29 February 2004: 18 on 28 February 2022; in leap years, on the 29th."""
    code = make_code(date(2004, 2, 29), "A", 977)
    assert age_on(code, date(2022, 2, 27)) == 17
    assert age_on(code, date(2022, 2, 28)) == 18
    assert age_on(code, date(2024, 2, 28)) == 19
    assert age_on(code, date(2024, 2, 29)) == 20


def test_lower_case_and_surrounding_space_are_accepted_in_canonical_form() -> None:
    """Typed codes are normalised before anything else sees them."""
    code = make_code(date(2005, 11, 11), "A", 966)
    assert validate(f"  {code.lower()} ", allow_test_codes=True) == code


def test_test_codes_are_refused_unless_allowed() -> None:
    """Individual numbers 900–999 are for tests and temporary use, not for production."""
    code = make_code(date(1980, 4, 4), "-", 999)
    assert is_test_code(code)
    with pytest.raises(InvalidIdentityCode, match="test code"):
        validate(code)
    assert not is_valid(code)
    assert is_valid(code, allow_test_codes=True)


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda c: c[:-1] + CHECK[(CHECK.index(c[-1]) + 1) % 31], "check character"),
        (lambda c: "310280" + c[6:], "impossible"),
        (lambda c: c[:6] + "Z" + c[7:], "form"),
        (lambda c: c[:10], "form"),
        (lambda c: "", "form"),
    ],
    ids=["check-character", "31-february", "unknown-sign", "too-short", "empty"],
)
def test_malformed_codes_are_refused_with_a_reason(
    mangle: Callable[[str], str], reason: str
) -> None:
    """Each kind of mistake says what is wrong, without repeating the code."""
    code = make_code(date(1980, 2, 1), "-", 912)
    bad = mangle(code)
    with pytest.raises(InvalidIdentityCode, match=reason) as caught:
        validate(bad, allow_test_codes=True)
    assert code not in str(caught.value)


def test_mask_keeps_the_birth_date_and_hides_the_rest() -> None:
    """Logs show 131052-**** and nothing that identifies the person further."""
    assert mask(make_code(date(1952, 10, 13), "-", 903)) == "131052-****"
    assert mask(make_code(date(2012, 1, 2), "B", 987)) == "020112B****"
    assert mask("not a code") == "***********"


@given(
    born=st.dates(min_value=date(1800, 1, 1), max_value=date(2099, 12, 31)),
    individual=st.integers(min_value=900, max_value=999),
    data=st.data(),
)
def test_any_test_code_round_trips_to_its_birth_date(
    born: date, individual: int, data: st.DataObject
) -> None:
    """For every date and every sign of its century, the code states that date."""
    signs = [s for s, base in CENTURY.items() if base <= born.year <= base + 99]
    code = make_code(born, data.draw(st.sampled_from(signs)), individual)
    assert birth_date(code) == born
    assert age_on(code, born) == 0


# ------------------------------------------------------------------------- protection at rest


def test_protected_code_reveals_the_same_code_and_differs_every_time() -> None:
    """AES-GCM with a random nonce: equal codes do not give equal tokens."""
    protector = CodeProtector(bytes(range(32)))
    code = make_code(date(1985, 3, 15), "-", 904)
    first, second = protector.protect(code), protector.protect(code)
    assert first.startswith("hetu1:") and second.startswith("hetu1:")
    assert first != second
    assert code not in first and "150385" not in first
    assert protector.reveal(first) == protector.reveal(second) == code


def test_token_from_another_key_or_tampered_is_refused() -> None:
    """Only the key that protected a code can reveal it, and only unaltered."""
    code = make_code(date(1985, 3, 15), "-", 904)
    token = CodeProtector(bytes(32)).protect(code)
    with pytest.raises(ValueError, match="another key"):
        CodeProtector(bytes([1]) * 32).reveal(token)
    flipped = token[:-3] + ("A" if token[-3] != "A" else "B") + token[-2:]
    with pytest.raises(ValueError, match="damaged"):
        CodeProtector(bytes(32)).reveal(flipped)
    with pytest.raises(ValueError, match="prefix"):
        CodeProtector(bytes(32)).reveal("hetu0:" + token[6:])


def test_fingerprint_finds_the_same_person_without_decrypting() -> None:
    """Same code and key, same fingerprint; another key gives another one."""
    code = make_code(date(1972, 11, 2), "Y", 913)
    protector = CodeProtector(bytes(32))
    assert protector.fingerprint(code) == protector.fingerprint(code.lower())
    assert protector.fingerprint(code) != CodeProtector(bytes([7]) * 32).fingerprint(code)
    assert protector.fingerprint(code) != protector.fingerprint(
        make_code(date(1972, 11, 2), "Y", 915)
    )


def test_key_must_be_32_bytes() -> None:
    """A short key is a configuration mistake, not a weaker cipher."""
    with pytest.raises(ValueError, match="32 bytes"):
        CodeProtector(b"short")


def test_key_file_is_created_private_and_then_reused(tmp_path: Path) -> None:
    """The key is made once with mode 0600 and read back unchanged."""
    path = tmp_path / "secrets" / "hetu.key"
    key = load_or_create_key(path)
    assert len(key) == 32
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert load_or_create_key(path) == key
    assert not [p for p in path.parent.iterdir() if p.name.endswith(".tmp")]


def test_key_file_open_to_others_is_refused(tmp_path: Path) -> None:
    """A key that others may read no longer protects anything."""
    path = tmp_path / "hetu.key"
    load_or_create_key(path)
    path.chmod(0o640)
    with pytest.raises(PermissionError, match="chmod 600"):
        load_or_create_key(path)
