"""Strong identification against a real OpenID provider (scripts/dev_idp, oidc-provider).

Every refusal here comes from something real: the provider's own answers, a token it issued to
someone else, a token re-signed by another key on its way (TamperingProxy), or the relying
party's clock moved on. Only the last section builds tokens locally, for attacks the provider
would never produce (``alg: none``, an HMAC made with the public key).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import stat
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import replace
from datetime import date, datetime
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlencode, urlsplit, urlunsplit
from zoneinfo import ZoneInfo

import pytest
from idp import DevIdp, SkewClock, TamperingProxy, dev_idp_fixture, login, resign, token_claims
from joserfc import jwt
from joserfc.jwk import KeySet, RSAKey

from server.intake.oidc import (
    IdentificationError,
    IdentificationErrorCode,
    Identity,
    OidcConfig,
    RelyingParty,
    generate_private_jwk,
    identity_from_claims,
    load_or_create_private_jwk,
    user_message,
    verify_id_token,
)
from server.intake.personal_code import age_on

Code = IdentificationErrorCode


@pytest.fixture(scope="session")
def dev_idp(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DevIdp]:
    yield from dev_idp_fixture(tmp_path_factory)


@pytest.fixture
async def rp(dev_idp: DevIdp) -> AsyncIterator[RelyingParty]:
    party = RelyingParty(dev_idp.config())
    await party.start()
    yield party
    await party.close()


async def started(config: OidcConfig, clock: Any = time.time) -> RelyingParty:
    party = RelyingParty(config, clock)
    await party.start()
    return party


async def identify(rp: RelyingParty, person: str = "aino") -> Identity:
    url, _ = rp.begin(context="ticket-1", lang="fi")
    _, identity = await rp.complete(await login(url, rp.config.redirect_uri, person=person))
    return identity


async def refused(rp: RelyingParty, query: dict[str, str]) -> IdentificationError:
    with pytest.raises(IdentificationError) as caught:
        await rp.complete(query)
    return caught.value


def helsinki_today() -> date:
    return datetime.now(ZoneInfo("Europe/Helsinki")).date()


# ------------------------------------------------------------------------- who comes back


async def test_helsinki_adult_comes_back_with_name_code_age_municipality_and_postal_code(
    rp: RelyingParty, dev_idp: DevIdp
) -> None:
    """The ID token and userinfo of the provider become a complete Identity for the caller."""
    url, _ = rp.begin(context="ticket-42", lang="fi")
    context, identity = await rp.complete(await login(url, dev_idp.redirect_uri, person="aino"))
    assert context == "ticket-42"
    assert (identity.given_name, identity.family_name) == ("Aino", "Testinen")
    assert identity.name == "Aino Testinen"
    assert identity.hetu == "150385-9046"
    assert identity.birth_date == date(1985, 3, 15)
    assert identity.age == age_on("150385-9046", helsinki_today()) >= 40
    assert identity.is_adult
    assert (identity.municipality, identity.municipality_code) == ("Helsinki", "091")
    assert identity.postal_code == "00530"
    assert identity.subject == "fi-test-aino"
    assert identity.issuer == dev_idp.issuer
    assert identity.acr == "http://ftn.ficora.fi/2017/loa2"


async def test_espoo_adult_with_a_2023_century_sign_is_identified(rp: RelyingParty) -> None:
    """A code with the new 1900s sign Y gives the right birth date, and Espoo is 049."""
    identity = await identify(rp, "eero")
    assert identity.hetu == "021172Y9136"
    assert identity.birth_date == date(1972, 11, 2)
    assert (identity.municipality, identity.municipality_code) == ("Espoo", "049")
    assert identity.postal_code == "02100"


async def test_sixteen_year_old_is_identified_as_a_minor(rp: RelyingParty) -> None:
    """The 16-year-old (2000s sign B) is identified, and the caller can see they are a minor."""
    identity = await identify(rp, "ilona")
    assert identity.hetu[6] == "B"
    assert identity.age == 16
    assert not identity.is_adult


async def test_person_who_turns_eighteen_tomorrow_is_still_a_minor(rp: RelyingParty) -> None:
    """Age is counted in completed years on today's Finnish date."""
    identity = await identify(rp, "oona")
    assert identity.age == 17
    assert not identity.is_adult


async def test_person_who_turned_eighteen_today_is_an_adult(rp: RelyingParty) -> None:
    """The 18th birthday itself counts as adult."""
    identity = await identify(rp, "veikko")
    assert identity.age == 18
    assert identity.is_adult


async def test_person_living_abroad_has_no_municipality_or_postal_code(rp: RelyingParty) -> None:
    """Missing optional claims become None rather than failing the login."""
    identity = await identify(rp, "matti")
    assert identity.hetu == "300690X9579"
    assert (identity.municipality, identity.municipality_code, identity.postal_code) == (
        None,
        None,
        None,
    )


async def test_provider_fetches_our_published_keys_to_check_our_client_assertion(
    dev_idp: DevIdp,
) -> None:
    """A client registered by jwks_uri authenticates with keys served by jwks_handler."""
    party = await started(dev_idp.config("jwks_uri"))
    try:
        identity = await identify(party, "helmi")
    finally:
        await party.close()
    assert identity.hetu == "090138-962E"
    assert identity.age >= 85


async def test_authorization_url_carries_pkce_state_nonce_and_language(rp: RelyingParty) -> None:
    """The request binds the login to this browser, this token and this code verifier."""
    url, state = rp.begin(context="t", lang="sv")
    params = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert params["state"] == state
    assert params["code_challenge_method"] == "S256"
    assert len(params["code_challenge"]) == 43
    assert len(params["nonce"]) >= 32
    assert params["ui_locales"] == "sv"
    assert params["scope"] == "openid profile address"
    other_url, other_state = rp.begin(context="t", lang="de")
    assert other_state != state
    assert "ui_locales" not in parse_qs(urlsplit(other_url).query)


def test_public_jwks_holds_no_private_part(dev_idp: DevIdp) -> None:
    """What the provider may fetch is the public half only."""
    party = RelyingParty(dev_idp.config())
    (key,) = party.public_jwks()["keys"]
    assert key["kid"] == dev_idp.clients["main"].private_jwk["kid"]
    assert key["alg"] == "ES256" and key["use"] == "sig"
    assert "d" not in key


# ------------------------------------------------------------------------- state


async def test_callback_with_an_unknown_state_is_rejected(rp: RelyingParty) -> None:
    """A state this relying party never issued (here: one of its own, altered) is refused."""
    url, state = rp.begin(context="t", lang="fi")
    query = await login(url, rp.config.redirect_uri)
    error = await refused(rp, {**query, "state": state[::-1]})
    assert error.code == Code.STATE_MISMATCH
    assert "not one this server made" in error.reason


async def test_callback_without_state_is_rejected(rp: RelyingParty) -> None:
    """No state, no login: a code alone is not enough."""
    url, _ = rp.begin(context="t", lang="fi")
    query = await login(url, rp.config.redirect_uri)
    del query["state"]
    assert (await refused(rp, query)).code == Code.STATE_MISMATCH


async def test_state_cannot_be_used_twice(rp: RelyingParty) -> None:
    """A replayed callback fails even though the first one succeeded."""
    url, _ = rp.begin(context="t", lang="fi")
    query = await login(url, rp.config.redirect_uri)
    await rp.complete(query)
    error = await refused(rp, query)
    assert error.code == Code.STATE_MISMATCH
    assert "already used" in error.reason


async def test_login_completed_after_its_time_to_live_is_rejected(dev_idp: DevIdp) -> None:
    """A pending login is forgotten once login_ttl_seconds have passed."""
    clock = SkewClock()
    party = await started(dev_idp.config(login_ttl_seconds=600), clock)
    try:
        url, _ = party.begin(context="t", lang="fi")
        query = await login(url, dev_idp.redirect_uri)
        clock.advance(601)
        error = await refused(party, query)
    finally:
        await party.close()
    assert error.code == Code.STATE_MISMATCH
    assert "expired" in error.reason and "600 seconds" in error.reason


async def test_a_flood_of_begun_logins_does_not_stop_a_real_one(dev_idp: DevIdp) -> None:
    """Anyone can begin logins. The server keeps no table of them (each state carries its
    login, sealed), so 20,000 begun by a stranger leave a resident's login as it was."""
    party = await started(dev_idp.config())
    try:
        real_url, _ = party.begin(context="real", lang="fi")
        for n in range(20_000):
            party.begin(context=f"flood-{n}", lang="fi")
        context, _ = await party.complete(await login(real_url, dev_idp.redirect_uri))
    finally:
        await party.close()
    assert context == "real"


async def test_a_state_sealed_with_another_key_is_refused(dev_idp: DevIdp) -> None:
    """A state made by another relying party (another key) does not open here."""
    ours = await started(dev_idp.config())
    theirs = await started(dev_idp.config(private_jwk=generate_private_jwk()))
    try:
        url, _ = theirs.begin(context="t", lang="fi")
        query = await login(url, dev_idp.redirect_uri)
        error = await refused(ours, query)
    finally:
        await ours.close()
        await theirs.close()
    assert error.code == Code.STATE_MISMATCH


# ------------------------------------------------------------------------- the ID token


async def test_id_token_carrying_another_nonce_is_rejected(rp: RelyingParty) -> None:
    """A token the provider made for a request with another nonce does not complete our login."""
    url, _ = rp.begin(context="t", lang="fi")
    parts = urlsplit(url)
    params = {k: v[0] for k, v in parse_qs(parts.query).items()}
    params["nonce"] = "nonce-of-an-earlier-login-an-attacker-replays"
    forged_request = urlunsplit(parts._replace(query=urlencode(params)))
    error = await refused(rp, await login(forged_request, rp.config.redirect_uri))
    assert error.code == Code.NONCE_MISMATCH
    assert "nonce" in error.reason


async def test_id_token_that_expired_before_the_callback_is_rejected(dev_idp: DevIdp) -> None:
    """The provider issues 1-second tokens to this client; 45 s later it is past the leeway."""
    clock = SkewClock()
    party = await started(dev_idp.config("short_lived", leeway_seconds=30), clock)
    try:
        url, _ = party.begin(context="t", lang="fi")
        query = await login(url, dev_idp.redirect_uri)
        clock.advance(45)
        error = await refused(party, query)
    finally:
        await party.close()
    assert error.code == Code.TOKEN_EXPIRED
    assert "expired" in error.reason


async def test_id_token_signed_by_another_key_is_rejected(dev_idp: DevIdp) -> None:
    """A real token re-signed on its way under the provider's key id fails the signature."""
    rogue = RSAKey.generate_key(2048)
    async with TamperingProxy(dev_idp.issuer) as proxy:
        proxy.tamper = lambda token: resign(token, rogue)
        party = await started(dev_idp.config(discovery_url=proxy.discovery_url))
        try:
            url, _ = party.begin(context="t", lang="fi")
            error = await refused(party, await login(url, dev_idp.redirect_uri))
        finally:
            await party.close()
    assert proxy.id_tokens, "the provider's token passed through the proxy"
    assert error.code == Code.BAD_SIGNATURE
    assert "signature" in error.reason


async def test_unknown_key_id_makes_the_relying_party_fetch_keys_once_more(
    dev_idp: DevIdp,
) -> None:
    """A key id not seen before may be a rotation, so keys are refetched before refusing."""
    rogue = RSAKey.generate_key(2048)
    async with TamperingProxy(dev_idp.issuer) as proxy:
        proxy.tamper = lambda token: resign(token, rogue, kid="rotated-in-by-an-attacker")
        party = await started(dev_idp.config(discovery_url=proxy.discovery_url))
        try:
            for _ in range(2):
                url, _ = party.begin(context="t", lang="fi")
                error = await refused(party, await login(url, dev_idp.redirect_uri))
                assert error.code == Code.BAD_SIGNATURE
        finally:
            await party.close()
    # Once at start, once for the unknown key; the second forgery within a minute adds none.
    assert proxy.requests.count("/jwks") == 2


async def test_id_token_the_provider_issued_to_another_client_is_rejected(
    dev_idp: DevIdp,
) -> None:
    """A genuine token for kanava-other, substituted into our token response, is not for us."""
    async with TamperingProxy(dev_idp.issuer) as proxy:
        other = await started(dev_idp.config("other", discovery_url=proxy.discovery_url))
        party = await started(dev_idp.config(discovery_url=proxy.discovery_url))
        try:
            url, _ = other.begin(context="t", lang="fi")
            await other.complete(await login(url, dev_idp.redirect_uri))
            token_for_other = proxy.id_tokens[-1]
            assert token_claims(token_for_other)["aud"] == "kanava-other"
            proxy.tamper = lambda _token: token_for_other
            url, _ = party.begin(context="t", lang="fi")
            error = await refused(party, await login(url, dev_idp.redirect_uri))
        finally:
            await other.close()
            await party.close()
    assert error.code == Code.WRONG_AUDIENCE
    assert "kanava-other" in error.reason and "kanava-test" in error.reason


async def test_authorization_response_from_another_issuer_is_rejected(dev_idp: DevIdp) -> None:
    """RFC 9207: the provider's iss parameter names it, not the issuer we trust (a mix-up)."""
    async with TamperingProxy(dev_idp.issuer) as proxy:
        proxy.impersonate = True
        party = await started(dev_idp.config(issuer=proxy.url))
        try:
            url, _ = party.begin(context="t", lang="fi")
            error = await refused(party, await login(url, dev_idp.redirect_uri))
        finally:
            await party.close()
    assert error.code == Code.WRONG_ISSUER
    assert dev_idp.issuer in error.reason


async def test_metadata_naming_another_issuer_is_refused_at_start(dev_idp: DevIdp) -> None:
    """Discovery must confirm the configured issuer, or nothing from it is trusted."""
    async with TamperingProxy(dev_idp.issuer) as proxy:
        party = RelyingParty(dev_idp.config(issuer=proxy.url))
        with pytest.raises(IdentificationError) as caught:
            await party.start()
    assert caught.value.code == Code.WRONG_ISSUER
    assert "provider metadata names issuer" in caught.value.reason


# ------------------------------------------------------------------------- the provider says no


async def test_resident_who_cancels_gets_a_provider_error(rp: RelyingParty) -> None:
    """Pressing Cancel at the provider comes back as access_denied."""
    url, _ = rp.begin(context="t", lang="fi")
    query = await login(url, rp.config.redirect_uri, person=None)
    assert query["error"] == "access_denied"
    error = await refused(rp, query)
    assert error.code == Code.PROVIDER_ERROR
    assert "access_denied" in error.reason and "cancelled" in error.reason
    assert "Voit yrittää uudelleen" in error.user_message("fi")


async def test_forged_code_is_refused_by_the_token_endpoint(rp: RelyingParty) -> None:
    """A code the provider never issued fails at its token endpoint with invalid_grant."""
    url, _ = rp.begin(context="t", lang="fi")
    query = await login(url, rp.config.redirect_uri)
    error = await refused(rp, {**query, "code": query["code"][:-4] + "AAAA"})
    assert error.code == Code.PROVIDER_ERROR
    assert "invalid_grant" in error.reason


async def test_client_whose_key_the_provider_does_not_know_cannot_redeem_a_code(
    dev_idp: DevIdp,
) -> None:
    """private_key_jwt: an assertion signed with an unregistered key is invalid_client."""
    impostor = await started(dev_idp.config(private_jwk=generate_private_jwk("ES256")))
    try:
        url, _ = impostor.begin(context="t", lang="fi")
        error = await refused(impostor, await login(url, dev_idp.redirect_uri))
    finally:
        await impostor.close()
    assert error.code == Code.PROVIDER_ERROR
    assert "invalid_client" in error.reason


async def test_provider_refuses_a_login_without_pkce(rp: RelyingParty) -> None:
    """The development provider, like production, requires PKCE."""
    url, _ = rp.begin(context="t", lang="fi")
    parts = urlsplit(url)
    params = {k: v[0] for k, v in parse_qs(parts.query).items() if not k.startswith("code_")}
    query = await login(urlunsplit(parts._replace(query=urlencode(params))), rp.config.redirect_uri)
    error = await refused(rp, query)
    assert error.code == Code.PROVIDER_ERROR
    assert "invalid_request" in error.reason


async def test_assurance_level_below_the_one_required_is_rejected(dev_idp: DevIdp) -> None:
    """Asking for a higher level than the provider used means the login is not strong enough."""
    party = await started(dev_idp.config(acr_values=("http://ftn.ficora.fi/2017/loa3",)))
    try:
        url, _ = party.begin(context="t", lang="fi")
        error = await refused(party, await login(url, dev_idp.redirect_uri))
    finally:
        await party.close()
    assert error.code == Code.INSUFFICIENT_ASSURANCE
    assert "loa2" in error.reason


# ------------------------------------------------------------------------- the claims


async def test_identity_code_with_a_wrong_check_character_is_rejected(rp: RelyingParty) -> None:
    """The provider's broken test person is refused, and the log line masks the code."""
    url, _ = rp.begin(context="t", lang="fi")
    error = await refused(rp, await login(url, rp.config.redirect_uri, person="virhe"))
    assert error.code == Code.INVALID_IDENTITY_CODE
    assert "check character" in error.reason
    assert "010180-****" in error.reason and "970" not in error.reason


async def test_test_identity_codes_are_refused_unless_allowed(dev_idp: DevIdp) -> None:
    """Production configuration (allow_test_codes=False) refuses the 900-999 range."""
    party = await started(dev_idp.config(allow_test_codes=False))
    try:
        url, _ = party.begin(context="t", lang="fi")
        error = await refused(party, await login(url, dev_idp.redirect_uri))
    finally:
        await party.close()
    assert error.code == Code.INVALID_IDENTITY_CODE
    assert "test code" in error.reason


async def test_identity_code_under_a_claim_name_the_provider_does_not_use_is_missing(
    dev_idp: DevIdp,
) -> None:
    """A broker configured for urn:oid:1.2.246.21 that sends another name gives missing_claims."""
    party = await started(dev_idp.config(identity_code_claim="urn:oid:1.2.246.21"))
    try:
        url, _ = party.begin(context="t", lang="fi")
        error = await refused(party, await login(url, dev_idp.redirect_uri))
    finally:
        await party.close()
    assert error.code == Code.MISSING_CLAIMS
    assert "urn:oid:1.2.246.21" in error.reason


def test_identity_code_claim_name_is_configurable() -> None:
    """The same claims under the OID name used by Finnish brokers give the same Identity."""
    claims = {
        "iss": "https://broker.example",
        "sub": "abc",
        "given_name": "Aino",
        "family_name": "Testinen",
        "urn:oid:1.2.246.21": "150385-9046",
    }
    identity = identity_from_claims(
        claims,
        identity_code_claim="urn:oid:1.2.246.21",
        today=date(2026, 3, 14),
        allow_test_codes=True,
    )
    assert identity.hetu == "150385-9046"
    assert identity.age == 40
    assert identity.municipality is None


def test_identity_repr_does_not_reveal_the_code() -> None:
    """Logging an Identity shows the birth date part only."""
    identity = identity_from_claims(
        {"given_name": "Aino", "family_name": "Testinen", "personal_identity_code": "150385-9046"},
        today=date(2026, 1, 1),
        allow_test_codes=True,
    )
    assert "150385-****" in repr(identity)
    assert "9046" not in repr(identity)


async def test_unreachable_provider_fails_start_clearly(dev_idp: DevIdp) -> None:
    """Nothing listening at the issuer is provider_unreachable, not a crash."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    party = RelyingParty(dev_idp.config(issuer=closed, http_timeout_seconds=2))
    with pytest.raises(IdentificationError) as caught:
        await party.start()
    assert caught.value.code == Code.PROVIDER_UNREACHABLE
    assert "could not be reached" in caught.value.reason
    assert "yhteyttä" in caught.value.user_message("fi")


def test_relying_party_must_be_started_before_a_login_begins(dev_idp: DevIdp) -> None:
    """begin() without discovery is a programming error, said plainly."""
    with pytest.raises(RuntimeError, match="start"):
        RelyingParty(dev_idp.config()).begin(context="t", lang="fi")


# ------------------------------------------------------------------------- forged locally


@pytest.fixture
def provider_key() -> RSAKey:
    return RSAKey.generate_key(2048, parameters={"alg": "RS256", "use": "sig"}, auto_kid=True)


def keys_of(key: RSAKey) -> KeySet:
    return KeySet.import_key_set({"keys": [key.as_dict(private=False)]})


def claims_for(**overrides: Any) -> dict[str, Any]:
    now = int(time.time())
    claims = {
        "iss": "https://idp.test",
        "aud": "kanava",
        "sub": "s1",
        "nonce": "n1",
        "iat": now,
        "exp": now + 300,
    }
    claims.update(overrides)
    return {k: v for k, v in claims.items() if v is not None}


def check(token: str, key: RSAKey) -> dict[str, Any]:
    return verify_id_token(
        token,
        keys=keys_of(key),
        issuer="https://idp.test",
        client_id="kanava",
        nonce="n1",
        now=time.time(),
        leeway=30,
    )


def b64(data: dict[str, Any] | bytes) -> str:
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode()


def test_token_with_alg_none_is_rejected_as_badly_signed(provider_key: RSAKey) -> None:
    """An unsigned token is never accepted, whatever it claims."""
    token = f"{b64({'alg': 'none', 'kid': provider_key.kid})}.{b64(claims_for())}."
    with pytest.raises(IdentificationError) as caught:
        check(token, provider_key)
    assert caught.value.code == Code.BAD_SIGNATURE


def test_hmac_token_keyed_with_the_providers_public_key_is_rejected(provider_key: RSAKey) -> None:
    """The classic key confusion: HS256 with the public key as secret does not verify."""
    header = b64({"alg": "HS256", "kid": provider_key.kid, "typ": "JWT"})
    signing_input = f"{header}.{b64(claims_for())}"
    secret = provider_key.as_pem(private=False)
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    with pytest.raises(IdentificationError) as caught:
        check(f"{signing_input}.{b64(mac)}", provider_key)
    assert caught.value.code == Code.BAD_SIGNATURE


def test_properly_signed_token_passes(provider_key: RSAKey) -> None:
    """The local forgeries above fail for their forgery, not for the test's setup."""
    token = jwt.encode({"alg": "RS256", "kid": provider_key.kid}, claims_for(), provider_key)
    assert check(token, provider_key)["sub"] == "s1"


def test_token_from_another_issuer_is_rejected(provider_key: RSAKey) -> None:
    """A correctly signed token whose iss is not our provider's gives the mix-up away."""
    token = jwt.encode(
        {"alg": "RS256", "kid": provider_key.kid},
        claims_for(iss="https://attacker.test"),
        provider_key,
    )
    with pytest.raises(IdentificationError) as caught:
        check(token, provider_key)
    assert caught.value.code == Code.WRONG_ISSUER
    assert "https://attacker.test" in caught.value.reason


def test_token_for_several_audiences_must_be_authorized_for_us(provider_key: RSAKey) -> None:
    """With more than one audience, azp must name us."""
    header = {"alg": "RS256", "kid": provider_key.kid}
    ours = jwt.encode(header, claims_for(aud=["kanava", "x"], azp="kanava"), provider_key)
    assert check(ours, provider_key)["azp"] == "kanava"
    for azp in ("x", None):
        theirs = jwt.encode(header, claims_for(aud=["kanava", "x"], azp=azp), provider_key)
        with pytest.raises(IdentificationError) as caught:
            check(theirs, provider_key)
        assert caught.value.code == Code.WRONG_AUDIENCE


def test_token_dated_in_the_future_beyond_the_leeway_is_rejected(provider_key: RSAKey) -> None:
    """A token from a provider whose clock runs ahead by minutes is not yet valid."""
    later = int(time.time()) + 120
    token = jwt.encode(
        {"alg": "RS256", "kid": provider_key.kid},
        claims_for(iat=later, exp=later + 300),
        provider_key,
    )
    with pytest.raises(IdentificationError) as caught:
        check(token, provider_key)
    assert caught.value.code == Code.TOKEN_EXPIRED
    assert "future" in caught.value.reason


def test_token_without_expiry_is_rejected(provider_key: RSAKey) -> None:
    """exp is required: a token valid forever is not an ID token."""
    token = jwt.encode(
        {"alg": "RS256", "kid": provider_key.kid}, claims_for(exp=None), provider_key
    )
    with pytest.raises(IdentificationError) as caught:
        check(token, provider_key)
    assert caught.value.code == Code.MISSING_CLAIMS


# ------------------------------------------------------------------------- messages and keys


@pytest.mark.parametrize("code", list(Code))
def test_every_error_has_a_message_in_finnish_swedish_and_english(code: Code) -> None:
    """Residents read the failure in their language; other languages get English."""
    texts = {lang: user_message(code, lang) for lang in ("fi", "sv", "en")}
    assert len(set(texts.values())) == 3
    assert all(text.endswith(".") for text in texts.values())
    assert user_message(code, "de") == texts["en"]
    assert user_message(code.value, "sv") == texts["sv"]


def test_private_key_file_is_created_private_and_then_reused(tmp_path: Path) -> None:
    """The client key is made once, readable by its owner only, and read back unchanged."""
    path = tmp_path / "keys" / "oidc-client.jwk"
    first = load_or_create_private_jwk(path)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert first["kty"] == "EC" and first["alg"] == "ES256" and "d" in first
    assert load_or_create_private_jwk(path) == first


def test_private_key_file_readable_by_others_is_refused(tmp_path: Path) -> None:
    """A key others can read is not used as if it were still secret."""
    path = tmp_path / "oidc-client.jwk"
    load_or_create_private_jwk(path)
    path.chmod(0o644)
    with pytest.raises(PermissionError, match="chmod 600"):
        load_or_create_private_jwk(path)


def test_configuration_refuses_a_public_key_and_a_login_without_openid() -> None:
    """Mistakes that would only show at the provider are caught when configuring."""
    private = generate_private_jwk("RS256")
    public = {k: v for k, v in private.items() if k not in {"d", "p", "q", "dp", "dq", "qi"}}
    base = OidcConfig("https://idp.test", "kanava", "https://k/cb", private)
    with pytest.raises(ValueError, match="private"):
        replace(base, private_jwk=public)
    with pytest.raises(ValueError, match="openid"):
        replace(base, scopes=("profile",))


def test_config_repr_does_not_show_the_private_key() -> None:
    """Logging the configuration does not leak the client key."""
    private = generate_private_jwk("ES256")
    config = OidcConfig("https://idp.test", "kanava", "https://k/cb", private)
    assert private["d"] not in repr(config)
