"""Strong identification of residents through an OpenID Connect provider (relying party side).

A resident who wants to chat as themselves is sent to the identification broker and comes back
with a code; Kanava trades the code for an ID token and turns its claims into an
:class:`Identity`. Everything an attacker could replay, forge or mix up is checked here:

- The login is bound to the browser that began it by ``state`` (single use, expires after
  ``login_ttl_seconds``), to the token by ``nonce``, and to the code by PKCE (S256): a stolen
  code is useless without the verifier. The server keeps no table of logins begun: the
  ``state`` itself carries the login (the caller's context, the nonce, the PKCE verifier, the
  expiry), encrypted and authenticated with a key derived from the client key (AES-GCM), so
  nobody can read, change or forge it, and no flood of begun logins can fill a table and
  stop real ones. Used states are remembered until they expire, so a callback works once.
- Kanava proves who it is at the token endpoint with ``private_key_jwt``: an assertion signed
  with a private key whose public half is published at ``/.well-known/jwks.json`` (or registered
  with the provider). No shared secret exists to leak.
- The ID token's signature is checked against the provider's published keys (fetched again when
  a token names a key we have not seen, at most once a minute), with asymmetric algorithms only,
  so neither ``alg: none`` nor an HMAC made with the public key passes. Then ``iss``, ``aud``
  (and ``azp``), ``exp``/``iat`` with a small leeway, and ``nonce``, in that order.
- The authorization response's ``iss`` parameter (RFC 9207) must name our provider, which
  stops mix-up attacks.

The personal identity code is validated and turned into a birth date and age by
:mod:`server.intake.personal_code`; this module never logs it (``Identity``'s repr masks it).

Errors::

    Exception
    └── IdentificationError   code: IdentificationErrorCode, reason: English for logs;
                              user_message(lang) gives the resident's text in fi/sv/en
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp
from aiohttp import web
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF
from joserfc import jws, jwt
from joserfc.errors import JoseError
from joserfc.jwk import ECKey, KeySet, OKPKey, RSAKey, import_key

from server.core.texts import HELSINKI
from server.intake import personal_code
from server.intake.personal_code import CodeProtector

__all__ = [
    "ASYMMETRIC_ALGORITHMS",
    "IDENTIFICATION",
    "Identification",
    "IdentificationErrorCode",
    "IdentificationError",
    "Identity",
    "OidcConfig",
    "RelyingParty",
    "generate_private_jwk",
    "identity_from_claims",
    "load_or_create_private_jwk",
    "user_message",
    "verify_id_token",
]

#: Signature algorithms an ID token may use. HMAC ones are absent on purpose: with a public key
#: as the "secret" anyone could forge them.
ASYMMETRIC_ALGORITHMS = (
    "RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA",
)  # fmt: skip

_KEY_REFETCH_INTERVAL = 60.0
_ASSERTION_LIFETIME = 60
_CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"


class IdentificationErrorCode(StrEnum):
    STATE_MISMATCH = "state_mismatch"
    NONCE_MISMATCH = "nonce_mismatch"
    TOKEN_EXPIRED = "token_expired"
    BAD_SIGNATURE = "bad_signature"
    WRONG_AUDIENCE = "wrong_audience"
    WRONG_ISSUER = "wrong_issuer"
    PROVIDER_ERROR = "provider_error"
    INVALID_IDENTITY_CODE = "invalid_identity_code"
    MISSING_CLAIMS = "missing_claims"
    PROVIDER_UNREACHABLE = "provider_unreachable"
    INSUFFICIENT_ASSURANCE = "insufficient_assurance"
    BUSY = "busy"


_TRY_AGAIN = {
    "fi": "Tunnistautumista ei voitu varmistaa. Yritä uudelleen.",
    "sv": "Identifieringen kunde inte verifieras. Försök igen.",
    "en": "Your identification could not be verified. Please try again.",
}

_USER_MESSAGES: dict[IdentificationErrorCode, dict[str, str]] = {
    IdentificationErrorCode.STATE_MISMATCH: {
        "fi": "Tunnistautuminen vanhentui tai se oli jo käytetty. Aloita tunnistautuminen alusta.",
        "sv": "Identifieringen har gått ut eller redan använts. Börja identifieringen på nytt.",
        "en": "Your identification expired or was already used. Please start again.",
    },
    IdentificationErrorCode.NONCE_MISMATCH: _TRY_AGAIN,
    IdentificationErrorCode.TOKEN_EXPIRED: _TRY_AGAIN,
    IdentificationErrorCode.BAD_SIGNATURE: _TRY_AGAIN,
    IdentificationErrorCode.WRONG_AUDIENCE: _TRY_AGAIN,
    IdentificationErrorCode.WRONG_ISSUER: _TRY_AGAIN,
    IdentificationErrorCode.PROVIDER_ERROR: {
        "fi": "Tunnistautuminen keskeytyi tai epäonnistui. Voit yrittää uudelleen.",
        "sv": "Identifieringen avbröts eller misslyckades. Du kan försöka igen.",
        "en": "Identification was cancelled or did not succeed. You can try again.",
    },
    IdentificationErrorCode.INVALID_IDENTITY_CODE: {
        "fi": "Henkilötunnustasi ei voitu hyväksyä. Ota yhteyttä terveysasemaan puhelimitse.",
        "sv": "Din personbeteckning kunde inte godkännas. Kontakta hälsostationen per telefon.",
        "en": "Your personal identity code could not be accepted. "
        "Please contact the health station by phone.",
    },
    IdentificationErrorCode.MISSING_CLAIMS: {
        "fi": "Tunnistuspalvelu ei välittänyt nimeäsi ja henkilötunnustasi. "
        "Yritä uudelleen tai valitse toinen tunnistustapa.",
        "sv": "Identifieringstjänsten lämnade inte ditt namn och din personbeteckning. "
        "Försök igen eller välj ett annat identifieringssätt.",
        "en": "The identification service did not give your name and personal identity code. "
        "Please try again or choose another identification method.",
    },
    IdentificationErrorCode.PROVIDER_UNREACHABLE: {
        "fi": "Tunnistuspalveluun ei juuri nyt saada yhteyttä. Yritä hetken kuluttua uudelleen.",
        "sv": "Identifieringstjänsten kan inte nås just nu. Försök igen om en stund.",
        "en": "The identification service cannot be reached right now. "
        "Please try again in a moment.",
    },
    IdentificationErrorCode.BUSY: {
        "fi": "Liian monta tunnistautumista on juuri nyt kesken. Yritä hetken kuluttua uudelleen.",
        "sv": "För många identifieringar pågår just nu. Försök igen om en stund.",
        "en": "Too many identifications are in progress right now. Please try again shortly.",
    },
    IdentificationErrorCode.INSUFFICIENT_ASSURANCE: {
        "fi": "Valitsemasi tunnistustapa ei ole riittävän vahva. "
        "Tunnistaudu pankkitunnuksilla tai mobiilivarmenteella.",
        "sv": "Identifieringssättet du valde är inte tillräckligt starkt. "
        "Identifiera dig med bankkoder eller mobilcertifikat.",
        "en": "The identification method you chose is not strong enough. "
        "Please use online banking credentials or a mobile certificate.",
    },
}


def user_message(code: IdentificationErrorCode | str, lang: str) -> str:
    """What to tell the resident, in ``lang`` (fi, sv or en; anything else gets English)."""
    messages = _USER_MESSAGES.get(IdentificationErrorCode(code), _TRY_AGAIN)
    return messages.get(lang, messages["en"])


class IdentificationError(Exception):
    """Identification failed; ``reason`` is for logs and never holds an identity code."""

    def __init__(self, code: IdentificationErrorCode, reason: str) -> None:
        super().__init__(f"{code.value}: {reason}")
        self.code = code
        self.reason = reason

    def user_message(self, lang: str) -> str:
        return user_message(self.code, lang)


@dataclass(frozen=True)
class OidcConfig:
    issuer: str
    client_id: str
    redirect_uri: str
    private_jwk: dict[str, Any] = field(repr=False)
    scopes: tuple[str, ...] = ("openid", "profile")
    identity_code_claim: str = "personal_identity_code"
    login_ttl_seconds: float = 600
    leeway_seconds: float = 30
    #: Languages passed on as ``ui_locales``; a login in another language sends none.
    ui_locales: tuple[str, ...] = ("fi", "sv", "en")
    #: Assurance levels to ask for; when set, the token's ``acr`` must be one of them.
    acr_values: tuple[str, ...] = ()
    #: Accept temporary and test identity codes (individual number 900–999): never in production.
    allow_test_codes: bool = False
    #: Where the provider metadata is when not at ``{issuer}/.well-known/openid-configuration``
    #: (an internal address, or a proxy in tests); its ``issuer`` must still equal ``issuer``.
    discovery_url: str | None = None
    http_timeout_seconds: float = 10
    #: Completed logins remembered (until they expire) so that a callback works once.
    max_used_states: int = 100_000

    def __post_init__(self) -> None:
        if "openid" not in self.scopes:
            raise ValueError("scopes must include 'openid'")
        if "d" not in self.private_jwk:
            raise ValueError("private_jwk must be a private key (it has no 'd')")


@dataclass(frozen=True)
class Identity:
    """A strongly identified person, as the provider vouched for them."""

    issuer: str
    subject: str
    given_name: str
    family_name: str
    hetu: str = field(repr=False)
    birth_date: date
    age: int
    municipality: str | None = None
    municipality_code: str | None = None
    postal_code: str | None = None
    acr: str | None = None

    @property
    def name(self) -> str:
        return f"{self.given_name} {self.family_name}"

    @property
    def is_adult(self) -> bool:
        return self.age >= 18

    @property
    def masked_hetu(self) -> str:
        return personal_code.mask(self.hetu)

    def __repr__(self) -> str:
        return (
            f"Identity(subject={self.subject!r}, name={self.name!r}, "
            f"hetu={self.masked_hetu!r}, age={self.age}, municipality={self.municipality!r})"
        )


@dataclass(frozen=True)
class _PendingLogin:
    context: str
    nonce: str
    code_verifier: str
    expires_at: float


@dataclass(frozen=True)
class _ProviderMetadata:
    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str | None
    iss_parameter_supported: bool
    id_token_algorithms: tuple[str, ...]


class RelyingParty:
    """One OpenID Connect client: begins logins, completes them, publishes its public key.

    ``clock`` gives wall-clock seconds; it dates pending logins, ages and token checks.
    """

    def __init__(self, config: OidcConfig, clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._clock = clock
        self._key = import_key(config.private_jwk)
        self._assertion_alg = _signing_algorithm(self._key)
        self._state_key = AESGCM(_state_key(config.private_jwk))
        self._used: OrderedDict[str, float] = OrderedDict()  # login id -> its expiry
        self._session: aiohttp.ClientSession | None = None
        self._metadata: _ProviderMetadata | None = None
        self._keys = KeySet([])
        self._keys_refetched_at: float | None = None
        self._keys_lock = asyncio.Lock()

    @property
    def config(self) -> OidcConfig:
        return self._config

    async def start(self) -> None:
        """Read the provider's metadata and keys; raises ``provider_unreachable``."""
        if self._session is not None:
            return
        timeout = aiohttp.ClientTimeout(total=self._config.http_timeout_seconds)
        self._session = aiohttp.ClientSession(timeout=timeout)
        try:
            self._metadata = await self._discover()
            self._keys = await self._fetch_keys()
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def public_jwks(self) -> dict[str, Any]:
        public = self._key.as_dict(private=False)
        public.setdefault("alg", self._assertion_alg)
        public.setdefault("use", "sig")
        return {"keys": [public]}

    async def jwks_handler(self, request: web.Request) -> web.Response:
        """aiohttp handler for ``GET /.well-known/jwks.json`` (the provider's ``jwks_uri``)."""
        return web.json_response(
            self.public_jwks(), headers={"Cache-Control": "public, max-age=300"}
        )

    def begin(self, *, context: str, lang: str) -> tuple[str, str]:
        """The provider URL to send the resident to, and its ``state``.

        ``context`` is the caller's and comes back from :meth:`complete` untouched.
        """
        metadata = self._require_metadata()
        now = self._clock()
        nonce = secrets.token_urlsafe(32)
        verifier = secrets.token_urlsafe(48)
        login = _PendingLogin(context, nonce, verifier, now + self._config.login_ttl_seconds)
        state = self._seal(login)
        challenge = _b64url(hashlib.sha256(verifier.encode("ascii")).digest())
        params = {
            "response_type": "code",
            "client_id": self._config.client_id,
            "redirect_uri": self._config.redirect_uri,
            "scope": " ".join(self._config.scopes),
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
        if lang in self._config.ui_locales:
            params["ui_locales"] = lang
        if self._config.acr_values:
            params["acr_values"] = " ".join(self._config.acr_values)
        endpoint = metadata.authorization_endpoint
        url = endpoint + ("&" if "?" in endpoint else "?") + urlencode(params)
        return url, state

    async def complete(self, query: Mapping[str, str]) -> tuple[str, Identity]:
        """Check the provider's redirect back to us and return ``(context, identity)``."""
        metadata = self._require_metadata()
        now = self._clock()
        pending = self._open(query.get("state") or "")
        if pending is None:
            raise IdentificationError(
                IdentificationErrorCode.STATE_MISMATCH,
                "the callback's state is not one this server made: unknown, forged or altered",
            )
        if not self._use(pending, now):
            raise IdentificationError(
                IdentificationErrorCode.STATE_MISMATCH, "the callback's state was already used"
            )
        if now > pending.expires_at:
            raise IdentificationError(
                IdentificationErrorCode.STATE_MISMATCH,
                f"the login expired: it was begun more than "
                f"{self._config.login_ttl_seconds:g} seconds ago",
            )
        self._check_response_issuer(query, metadata)
        if "error" in query:
            # Both values come from the browser's URL: quoted and cut short for the log.
            description = query.get("error_description", "no description")[:200]
            raise IdentificationError(
                IdentificationErrorCode.PROVIDER_ERROR,
                f"the provider ended the login with {query['error'][:64]!r}: {description!r}",
            )
        code = query.get("code")
        if not code:
            raise IdentificationError(
                IdentificationErrorCode.PROVIDER_ERROR,
                "the provider's callback has neither a code nor an error",
            )
        tokens = await self._redeem(metadata, code, pending.code_verifier)
        id_token = tokens.get("id_token")
        if not isinstance(id_token, str):
            raise IdentificationError(
                IdentificationErrorCode.PROVIDER_ERROR, "the token response has no ID token"
            )
        keys = await self._keys_for(id_token)
        claims = verify_id_token(
            id_token,
            keys=keys,
            issuer=self._config.issuer,
            client_id=self._config.client_id,
            nonce=pending.nonce,
            now=self._clock(),
            leeway=self._config.leeway_seconds,
            algorithms=metadata.id_token_algorithms,
        )
        self._check_assurance(claims)
        access_token = tokens.get("access_token")
        if self._lacks_person_claims(claims) and isinstance(access_token, str):
            claims = {**await self._userinfo(metadata, access_token, claims["sub"]), **claims}
        identity = identity_from_claims(
            claims,
            identity_code_claim=self._config.identity_code_claim,
            today=datetime.fromtimestamp(self._clock(), HELSINKI).date(),
            allow_test_codes=self._config.allow_test_codes,
        )
        return pending.context, identity

    # ------------------------------------------------------------------ internals

    def _require_metadata(self) -> _ProviderMetadata:
        if self._metadata is None or self._session is None:
            raise RuntimeError("RelyingParty.start() has not been awaited (or it was closed)")
        return self._metadata

    def _seal(self, login: _PendingLogin) -> str:
        """The login as an opaque ``state``: encrypted and authenticated (AES-GCM)."""
        payload = json.dumps(
            [login.context, login.nonce, login.code_verifier, login.expires_at],
            separators=(",", ":"),
        ).encode("utf-8")
        iv = secrets.token_bytes(12)
        return _b64url(iv + self._state_key.encrypt(iv, payload, _STATE_AAD))

    def _open(self, state: str) -> _PendingLogin | None:
        """The login a ``state`` of ours carries, or None for anything else."""
        try:
            raw = base64.urlsafe_b64decode(state + "=" * (-len(state) % 4))
            payload = self._state_key.decrypt(raw[:12], raw[12:], _STATE_AAD)
            context, nonce, verifier, expires_at = json.loads(payload)
        except (ValueError, InvalidTag, TypeError):
            return None
        return _PendingLogin(str(context), str(nonce), str(verifier), float(expires_at))

    def _use(self, login: _PendingLogin, now: float) -> bool:
        """Remember a login's state as used (until it expires); False if it was already."""
        while self._used:
            oldest, expires = next(iter(self._used.items()))
            if expires >= now and len(self._used) < self._config.max_used_states:
                break
            del self._used[oldest]
        if login.nonce in self._used:
            return False
        self._used[login.nonce] = login.expires_at
        return True

    def _check_response_issuer(self, query: Mapping[str, str], meta: _ProviderMetadata) -> None:
        # RFC 9207: an ``iss`` in the response must be ours; when the provider promises one,
        # its absence means the response may come from somewhere else.
        iss = query.get("iss")
        if iss is not None and iss != self._config.issuer:
            raise IdentificationError(
                IdentificationErrorCode.WRONG_ISSUER,
                f"the authorization response comes from {iss!r}, not {self._config.issuer!r}",
            )
        if iss is None and meta.iss_parameter_supported:
            raise IdentificationError(
                IdentificationErrorCode.WRONG_ISSUER,
                "the authorization response lacks the iss parameter the provider promises",
            )

    def _check_assurance(self, claims: Mapping[str, Any]) -> None:
        wanted = self._config.acr_values
        if wanted and claims.get("acr") not in wanted:
            raise IdentificationError(
                IdentificationErrorCode.INSUFFICIENT_ASSURANCE,
                f"the ID token's assurance level {claims.get('acr')!r} is not one of {wanted}",
            )

    def _lacks_person_claims(self, claims: Mapping[str, Any]) -> bool:
        needed = ("given_name", "family_name", self._config.identity_code_claim)
        return any(name not in claims for name in needed)

    async def _discover(self) -> _ProviderMetadata:
        url = self._config.discovery_url or (
            self._config.issuer.rstrip("/") + "/.well-known/openid-configuration"
        )
        doc = await self._get_json(url, "the provider metadata")
        if doc.get("issuer") != self._config.issuer:
            raise IdentificationError(
                IdentificationErrorCode.WRONG_ISSUER,
                f"the provider metadata names issuer {doc.get('issuer')!r}, "
                f"not the configured {self._config.issuer!r}",
            )
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri"):
            if not isinstance(doc.get(name), str):
                raise IdentificationError(
                    IdentificationErrorCode.PROVIDER_ERROR, f"the provider metadata has no {name}"
                )
        methods = doc.get("token_endpoint_auth_methods_supported")
        if isinstance(methods, list) and "private_key_jwt" not in methods:
            raise IdentificationError(
                IdentificationErrorCode.PROVIDER_ERROR,
                "the provider does not accept private_key_jwt",
            )
        advertised = doc.get("id_token_signing_alg_values_supported")
        algorithms = tuple(
            alg
            for alg in ASYMMETRIC_ALGORITHMS
            if not isinstance(advertised, list) or alg in advertised
        )
        if not algorithms:
            raise IdentificationError(
                IdentificationErrorCode.PROVIDER_ERROR,
                f"the provider signs ID tokens only with {advertised}, none of them asymmetric",
            )
        userinfo = doc.get("userinfo_endpoint")
        return _ProviderMetadata(
            issuer=doc["issuer"],
            authorization_endpoint=doc["authorization_endpoint"],
            token_endpoint=doc["token_endpoint"],
            jwks_uri=doc["jwks_uri"],
            userinfo_endpoint=userinfo if isinstance(userinfo, str) else None,
            iss_parameter_supported=doc.get("authorization_response_iss_parameter_supported")
            is True,
            id_token_algorithms=algorithms,
        )

    async def _fetch_keys(self) -> KeySet:
        doc = await self._get_json(self._require_metadata().jwks_uri, "the provider's keys")
        try:
            # Keys for encryption, or of types we cannot verify with, are not candidates.
            usable = [
                k for k in doc.get("keys", []) if isinstance(k, dict) and k.get("use") != "enc"
            ]
            return KeySet.import_key_set({"keys": usable})
        except (JoseError, ValueError, TypeError) as exc:
            raise IdentificationError(
                IdentificationErrorCode.PROVIDER_ERROR,
                f"the provider's key set is malformed: {exc}",
            ) from exc

    async def _keys_for(self, token: str) -> KeySet:
        """The provider's keys, fetched again once if ``token`` names a key we do not know."""
        try:
            kid = jws.extract_compact(token.encode("ascii")).headers().get("kid")
        except (JoseError, ValueError, UnicodeError) as exc:
            raise IdentificationError(
                IdentificationErrorCode.BAD_SIGNATURE,
                "the ID token is not a well-formed signed JWT",
            ) from exc
        if kid is None or any(key.kid == kid for key in self._keys.keys):
            return self._keys
        async with self._keys_lock:
            if any(key.kid == kid for key in self._keys.keys):
                return self._keys
            now = self._clock()
            # Keys rotate rarely; unknown key ids arriving in a flood must not become a flood
            # of requests to the provider.
            last = self._keys_refetched_at
            if last is None or now - last >= _KEY_REFETCH_INTERVAL or now < last:
                self._keys_refetched_at = now
                self._keys = await self._fetch_keys()
            return self._keys

    def _client_assertion(self, audience: str) -> str:
        now = int(self._clock())
        claims = {
            "iss": self._config.client_id,
            "sub": self._config.client_id,
            "aud": audience,
            "jti": secrets.token_urlsafe(24),
            "iat": now,
            "exp": now + _ASSERTION_LIFETIME,
        }
        header = {"alg": self._assertion_alg, "kid": self._key.kid, "typ": "JWT"}
        return jwt.encode(header, claims, self._key, algorithms=[self._assertion_alg])

    async def _redeem(self, meta: _ProviderMetadata, code: str, verifier: str) -> dict[str, Any]:
        form = {
            "grant_type": "authorization_code",
            "code": code,
            "redirect_uri": self._config.redirect_uri,
            "code_verifier": verifier,
            "client_id": self._config.client_id,
            "client_assertion_type": _CLIENT_ASSERTION_TYPE,
            # The issuer is the audience the assertion drafts now recommend, and one that
            # every provider accepts alongside the token endpoint.
            "client_assertion": self._client_assertion(self._config.issuer),
        }
        return await self._request_json(
            "POST", meta.token_endpoint, "the token endpoint", data=form
        )

    async def _userinfo(
        self, meta: _ProviderMetadata, access_token: str, subject: str
    ) -> dict[str, Any]:
        if meta.userinfo_endpoint is None:
            return {}
        claims = await self._request_json(
            "GET",
            meta.userinfo_endpoint,
            "the userinfo endpoint",
            headers={"Authorization": f"Bearer {access_token}"},
        )
        # OpenID Connect Core 5.3.2: a userinfo answer about someone else is a substitution.
        if claims.get("sub") != subject:
            raise IdentificationError(
                IdentificationErrorCode.PROVIDER_ERROR,
                "the userinfo response is about another subject",
            )
        return claims

    async def _get_json(self, url: str, what: str) -> dict[str, Any]:
        return await self._request_json("GET", url, what, unreachable_on_refusal=True)

    async def _request_json(
        self,
        method: str,
        url: str,
        what: str,
        *,
        unreachable_on_refusal: bool = False,
        **kwargs: Any,
    ) -> dict[str, Any]:
        session = self._session
        if session is None:
            raise RuntimeError("RelyingParty.start() has not been awaited (or it was closed)")
        try:
            async with session.request(method, url, allow_redirects=False, **kwargs) as response:
                status = response.status
                body = await response.read()
        except (aiohttp.ClientError, TimeoutError) as exc:
            raise IdentificationError(
                IdentificationErrorCode.PROVIDER_UNREACHABLE,
                f"{what} at {url} could not be reached: {exc!r}",
            ) from exc
        try:
            doc = json.loads(body)
        except ValueError:
            doc = None
        if status == 200 and isinstance(doc, dict):
            return doc
        if 400 <= status < 500 and isinstance(doc, dict) and not unreachable_on_refusal:
            # An OAuth error answer (RFC 6749 5.2): the provider refused, it is not down.
            raise IdentificationError(
                IdentificationErrorCode.PROVIDER_ERROR,
                f"{what} refused: {doc.get('error')!r}: "
                f"{doc.get('error_description', 'no description')}",
            )
        raise IdentificationError(
            IdentificationErrorCode.PROVIDER_UNREACHABLE,
            f"{what} at {url} answered HTTP {status} without a usable JSON object",
        )


def verify_id_token(
    token: str,
    *,
    keys: KeySet,
    issuer: str,
    client_id: str,
    nonce: str,
    now: float,
    leeway: float,
    algorithms: Collection[str] = ASYMMETRIC_ALGORITHMS,
) -> dict[str, Any]:
    """The claims of ``token`` once its signature, issuer, audience, times and nonce hold."""
    allowed = [alg for alg in algorithms if alg in ASYMMETRIC_ALGORITHMS]
    try:
        claims: dict[str, Any] = jwt.decode(token, keys, algorithms=allowed).claims
    except (JoseError, ValueError, TypeError, UnicodeError) as exc:
        raise IdentificationError(
            IdentificationErrorCode.BAD_SIGNATURE,
            f"the ID token's signature does not verify with the provider's keys "
            f"({type(exc).__name__}: {exc})",
        ) from exc
    if claims.get("iss") != issuer:
        raise IdentificationError(
            IdentificationErrorCode.WRONG_ISSUER,
            f"the ID token was issued by {claims.get('iss')!r}, not {issuer!r}",
        )
    audience = claims.get("aud")
    audiences = [audience] if isinstance(audience, str) else audience
    if not isinstance(audiences, list) or client_id not in audiences:
        raise IdentificationError(
            IdentificationErrorCode.WRONG_AUDIENCE,
            f"the ID token is meant for {audience!r}, not {client_id!r}",
        )
    azp = claims.get("azp")
    if (len(audiences) > 1 or azp is not None) and azp != client_id:
        raise IdentificationError(
            IdentificationErrorCode.WRONG_AUDIENCE,
            f"the ID token has audiences {audiences!r} and was authorized for {azp!r}, "
            f"not {client_id!r}",
        )
    exp, iat = _number(claims.get("exp")), _number(claims.get("iat"))
    if exp is None or iat is None:
        raise IdentificationError(
            IdentificationErrorCode.MISSING_CLAIMS, "the ID token lacks a numeric exp or iat"
        )
    if now - leeway >= exp:
        raise IdentificationError(
            IdentificationErrorCode.TOKEN_EXPIRED,
            f"the ID token expired {now - exp:.0f} seconds ago (leeway {leeway:g} s)",
        )
    if iat > now + leeway:
        raise IdentificationError(
            IdentificationErrorCode.TOKEN_EXPIRED,
            f"the ID token is dated {iat - now:.0f} seconds in the future: clocks disagree",
        )
    sent = claims.get("nonce")
    if not isinstance(sent, str) or not hmac.compare_digest(sent.encode(), nonce.encode()):
        raise IdentificationError(
            IdentificationErrorCode.NONCE_MISMATCH,
            "the ID token's nonce is not the one this login sent: a replayed or injected token",
        )
    if not isinstance(claims.get("sub"), str) or not claims["sub"]:
        raise IdentificationError(
            IdentificationErrorCode.MISSING_CLAIMS, "the ID token has no subject (sub)"
        )
    return claims


def identity_from_claims(
    claims: Mapping[str, Any],
    *,
    identity_code_claim: str = "personal_identity_code",
    today: date,
    allow_test_codes: bool = False,
) -> Identity:
    """The :class:`Identity` verified claims describe; ages are counted on ``today``."""
    wanted = ("given_name", "family_name", identity_code_claim)
    missing = [name for name in wanted if not isinstance(claims.get(name), str) or not claims[name]]
    if missing:
        raise IdentificationError(
            IdentificationErrorCode.MISSING_CLAIMS,
            f"the provider did not give {', '.join(missing)} (scopes or claim names may be wrong)",
        )
    try:
        hetu = personal_code.validate(
            claims[identity_code_claim], allow_test_codes=allow_test_codes
        )
    except personal_code.InvalidIdentityCode as exc:
        raise IdentificationError(
            IdentificationErrorCode.INVALID_IDENTITY_CODE,
            f"the personal identity code {personal_code.mask(claims[identity_code_claim])} "
            f"is refused: {exc.reason}",
        ) from exc
    address = claims.get("address")
    postal_code = address.get("postal_code") if isinstance(address, Mapping) else None
    return Identity(
        issuer=str(claims.get("iss", "")),
        subject=str(claims.get("sub", "")),
        given_name=claims["given_name"],
        family_name=claims["family_name"],
        hetu=hetu,
        birth_date=personal_code.birth_date(hetu),
        age=personal_code.age_on(hetu, today),
        municipality=_text(claims.get("municipality")),
        municipality_code=_text(claims.get("municipality_code")),
        postal_code=_text(postal_code),
        acr=_text(claims.get("acr")),
    )


_STATE_AAD = b"kanava oidc state v1"


def _state_key(private_jwk: Mapping[str, Any]) -> bytes:
    """The key that seals ``state``: derived from the client's private key, so every process
    with the same key file opens the states of the others."""
    secret = json.dumps(private_jwk, sort_keys=True).encode("utf-8")
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=_STATE_AAD).derive(secret)


def generate_private_jwk(alg: str = "ES256") -> dict[str, Any]:
    """A new private signing key as a JWK, with ``kid`` (its thumbprint), ``alg`` and ``use``."""
    params: Any = {"alg": alg, "use": "sig"}
    key: ECKey | RSAKey
    if alg == "ES256":
        key = ECKey.generate_key("P-256", parameters=params, auto_kid=True)
    elif alg == "RS256":
        key = RSAKey.generate_key(2048, parameters=params, auto_kid=True)
    else:
        raise ValueError(f"unsupported client key algorithm {alg!r}: use ES256 or RS256")
    return dict(key.as_dict(private=True))


def load_or_create_private_jwk(path: Path, alg: str = "ES256") -> dict[str, Any]:
    """The private JWK stored at ``path``, created (mode 0600) if missing."""
    path = Path(path)
    if not path.exists():
        jwk = json.dumps(generate_private_jwk(alg), indent=2).encode() + b"\n"
        personal_code.write_secret_file(path, jwk)
    loaded = json.loads(personal_code.read_secret_file(path))
    if not isinstance(loaded, dict) or "d" not in loaded:
        raise ValueError(f"{path} does not hold a private JWK")
    return loaded


def _signing_algorithm(key: Any) -> str:
    alg = key.get("alg")
    if isinstance(alg, str):
        return alg
    if isinstance(key, RSAKey):
        return "RS256"
    if isinstance(key, ECKey) and key.get("crv") == "P-256":
        return "ES256"
    if isinstance(key, OKPKey):
        return "EdDSA"
    raise ValueError("private_jwk needs an 'alg' for this key type")


def _b64url(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _number(value: object) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value)


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None


@dataclass
class Identification:
    """The relying party and the identity-code key of a running application; both None
    without a provider."""

    rp: RelyingParty | None = None
    protector: CodeProtector | None = None


IDENTIFICATION = web.AppKey("identification", Identification)
