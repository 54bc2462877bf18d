// Kanava development identity provider — TEST SERVICE, FICTITIOUS PERSONS ONLY.
//
// A real OpenID Provider (panva's oidc-provider, OpenID Certified) with a login page where you
// pick one of a few made-up persons with a button: no password, consent is automatic. It stands
// in for the strong-identification broker so Kanava's relying party (server/identity.py) can be
// developed and tested against real protocol messages, real signatures and real errors.
//
// Every personal identity code here is a test code: individual number 900–999 (the range the
// Digital and Population Data Services Agency uses for temporary and test codes) with a correct
// check character. Persons whose age matters are built from today's date, so "the 16-year-old"
// stays 16 and "turns 18 tomorrow" stays true.
//
//   node scripts/dev_idp/idp.mjs [--port 9090] [--host 127.0.0.1] [--clients clients.json]
//   env: KANAVA_IDP_PORT, KANAVA_IDP_HOST, KANAVA_IDP_CLIENTS, KANAVA_IDP_RP (see defaultClients)
//
// Prints `ready http://HOST:PORT` on stdout once listening (port 0 picks a free one).
//
// Clients file: a JSON list of oidc-provider client metadata, e.g.
//   [{"client_id": "kanava", "redirect_uris": ["http://127.0.0.1:8080/identity/callback"],
//     "jwks_uri": "http://127.0.0.1:8080/.well-known/jwks.json"}]
// (or "jwks": {"keys": [...]} inline). Every client authenticates with private_key_jwt and
// must use PKCE (S256). For negative tests a client may set "id_token_ttl" (seconds).

import crypto from 'node:crypto';
import fs from 'node:fs';
import http from 'node:http';
import { parseArgs } from 'node:util';

import { Provider, errors } from 'oidc-provider';

const BANNER = 'Kanava development identity provider — test service, fictitious persons only';
const LOOPBACK = new Set(['127.0.0.1', 'localhost', '::1']);
// Looks like the Finnish Trust Network's "substantial" level, but nothing here is trusted:
// it lets the relying party's assurance-level check be exercised.
const ACR = 'http://ftn.ficora.fi/2017/loa2';

// ---------------------------------------------------------------- fictitious persons

const CHECK_CHARACTERS = '0123456789ABCDEFHJKLMNPRSTUVWXY';
const CENTURY_SIGN_BASE = {
  '+': 1800, '-': 1900, Y: 1900, X: 1900, W: 1900, V: 1900, U: 1900,
  A: 2000, B: 2000, C: 2000, D: 2000, E: 2000, F: 2000,
};

function helsinkiToday() {
  // Ages are counted on the Finnish calendar day, as the relying party does.
  const text = new Intl.DateTimeFormat('en-CA', { timeZone: 'Europe/Helsinki' }).format(new Date());
  const [y, m, d] = text.split('-').map(Number);
  return new Date(Date.UTC(y, m - 1, d));
}

function yearsBefore(day, years, dayShift = 0) {
  // Date.UTC rolls 29 February over into March: right for a birthday that is still to come.
  const { y, m, d } = { y: day.getUTCFullYear(), m: day.getUTCMonth(), d: day.getUTCDate() };
  return new Date(Date.UTC(y - years, m, d + dayShift));
}

function birthdayYearsAgo(day, years) {
  // Born on this day `years` ago, or on 28 February when that year had no 29th: Finnish
  // counting (and server/personal_code.py) then has the birthday on the 28th.
  const born = yearsBefore(day, years);
  if (born.getUTCMonth() !== day.getUTCMonth()) born.setUTCDate(0);
  return born;
}

function identityCode(birth, sign, individual) {
  if (individual < 900 || individual > 999) throw new Error('test codes only: 900–999');
  const base = CENTURY_SIGN_BASE[sign];
  const year = birth.getUTCFullYear();
  if (year - base < 0 || year - base > 99) throw new Error(`sign ${sign} does not fit ${year}`);
  const two = (n) => String(n).padStart(2, '0');
  const datePart = two(birth.getUTCDate()) + two(birth.getUTCMonth() + 1) + two(year - base);
  const check = CHECK_CHARACTERS[Number(datePart + String(individual)) % 31];
  return `${datePart}${sign}${individual}${check}`;
}

function isoDate(day) {
  return day.toISOString().slice(0, 10);
}

function persons() {
  const today = helsinkiToday();
  const person = (id, given, family, birth, sign, individual, extra = {}) => ({
    id,
    given_name: given,
    family_name: family,
    birthdate: isoDate(birth),
    personal_identity_code: identityCode(birth, sign, individual),
    ...extra,
  });
  const helsinki = { municipality: 'Helsinki', municipality_code: '091' };
  const list = [
    person('aino', 'Aino', 'Testinen', new Date(Date.UTC(1985, 2, 15)), '-', 904, {
      label: 'adult, Helsinki, postal code 00530',
      ...helsinki,
      address: { street_address: 'Kokeilukatu 1 A 2', postal_code: '00530', locality: 'Helsinki', country: 'FI' },
    }),
    person('eero', 'Eero', 'Kokeilija', new Date(Date.UTC(1972, 10, 2)), 'Y', 913, {
      label: 'adult, Espoo (049), 2023 century sign Y',
      municipality: 'Espoo',
      municipality_code: '049',
      address: { postal_code: '02100', locality: 'Espoo', country: 'FI' },
    }),
    person('ilona', 'Ilona', 'Nuorinen', yearsBefore(today, 16, -100), 'B', 926, {
      label: '16 years old, Vantaa, 2023 century sign B',
      municipality: 'Vantaa',
      municipality_code: '092',
    }),
    person('oona', 'Oona', 'Huominen', yearsBefore(today, 18, 1), 'A', 938, {
      label: 'turns 18 tomorrow, Helsinki',
      ...helsinki,
    }),
    person('veikko', 'Veikko', 'Tanaan', birthdayYearsAgo(today, 18), 'A', 941, {
      label: 'turned 18 today, Helsinki',
      ...helsinki,
    }),
    person('matti', 'Matti', 'Ulkomaalainen', new Date(Date.UTC(1990, 5, 30)), 'X', 957, {
      label: 'adult living abroad: no municipality, no address',
    }),
    person('helmi', 'Helmi', 'Vanhanen', new Date(Date.UTC(1938, 0, 9)), '-', 962, {
      label: 'aged, Tampere',
      municipality: 'Tampere',
      municipality_code: '837',
    }),
  ];
  // For tests of the relying party's refusal: a code whose check character is wrong.
  const broken = person('virhe', 'Virhe', 'Tunnus', new Date(Date.UTC(1980, 0, 1)), '-', 970, {
    label: 'FOR TESTS: identity code with a wrong check character',
    ...helsinki,
  });
  const good = broken.personal_identity_code;
  const wrong = CHECK_CHARACTERS[(CHECK_CHARACTERS.indexOf(good.at(-1)) + 1) % 31];
  broken.personal_identity_code = good.slice(0, -1) + wrong;
  list.push(broken);
  for (const p of list) p.name = `${p.given_name} ${p.family_name}`;
  return list;
}

function findPerson(id) {
  return persons().find((p) => p.id === id);
}

// The subject looks unlike the person's key on purpose: relying parties must not parse it.
const SUBJECT_PREFIX = 'fi-test-';

// ---------------------------------------------------------------- configuration

const { values: args } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.KANAVA_IDP_PORT ?? '9090' },
    host: { type: 'string', default: process.env.KANAVA_IDP_HOST ?? '127.0.0.1' },
    clients: { type: 'string', default: process.env.KANAVA_IDP_CLIENTS ?? '' },
  },
});

if (!LOOPBACK.has(args.host)) {
  console.error(`refusing to listen on ${args.host}: this test service listens on loopback only`);
  process.exit(2);
}

function defaultClients() {
  // What `scripts/serve` needs: Kanava on KANAVA_IDP_RP publishing its keys itself.
  const rp = (process.env.KANAVA_IDP_RP ?? 'http://127.0.0.1:8080').replace(/\/$/, '');
  return [{
    client_id: 'kanava-dev',
    redirect_uris: [`${rp}/identity/callback`],
    jwks_uri: `${rp}/.well-known/jwks.json`,
  }];
}

function loadClients() {
  const list = args.clients ? JSON.parse(fs.readFileSync(args.clients, 'utf8')) : defaultClients();
  return list.map((client) => ({
    grant_types: ['authorization_code'],
    response_types: ['code'],
    token_endpoint_auth_method: 'private_key_jwt',
    ...client,
  }));
}

function signingKey() {
  // A fresh key per run: nothing issued by a test service should outlive it.
  const { privateKey } = crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  const jwk = privateKey.export({ format: 'jwk' });
  return { ...jwk, kid: `dev-${crypto.randomBytes(6).toString('hex')}`, use: 'sig', alg: 'RS256' };
}

function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

function page(title, body) {
  return `<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(title)} — TEST SERVICE</title>
<style>
  body { font-family: sans-serif; max-width: 42rem; margin: 2rem auto; }
  .banner { background: #b00020; color: white; padding: 1rem; font-weight: bold; }
  form { display: inline; } button { margin: .25rem 0; padding: .5rem 1rem; }
  li { list-style: none; }
</style></head>
<body><p class="banner" role="alert">${escapeHtml(BANNER)}<br>
Kehitysympäristön testipalvelu: vain keksittyjä henkilöitä.
Testtjänst för utveckling: endast fiktiva personer.</p>
<h1>${escapeHtml(title)}</h1>
${body}
</body></html>`;
}

// ---------------------------------------------------------------- provider

function buildProvider(issuer) {
  const configuration = {
    clients: loadClients(),
    jwks: { keys: [signingKey()] },
    cookies: { keys: [crypto.randomBytes(32).toString('hex')] },
    clientAuthMethods: ['private_key_jwt'],
    responseTypes: ['code'],
    pkce: { required: () => true },
    acrValues: [ACR],
    claims: {
      openid: ['sub'],
      profile: [
        'name', 'given_name', 'family_name', 'birthdate',
        'personal_identity_code', 'municipality', 'municipality_code',
      ],
      address: ['address'],
    },
    extraClientMetadata: {
      properties: ['id_token_ttl'],
      validator(_ctx, key, value) {
        if (key === 'id_token_ttl' && value !== undefined
            && !(Number.isInteger(value) && value > 0)) {
          throw new errors.InvalidClientMetadata('id_token_ttl must be a positive integer');
        }
      },
    },
    ttl: {
      AccessToken: 600,
      AuthorizationCode: 60,
      Grant: 3600,
      IdToken: (_ctx, _token, client) => client?.id_token_ttl ?? 600,
      Interaction: 600,
      Session: 3600,
    },
    features: {
      devInteractions: { enabled: false },
      rpInitiatedLogout: { enabled: false },
    },
    interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
    // oidc-provider refuses to fetch from special-use addresses (SSRF protection), but in
    // development Kanava publishes its jwks_uri on loopback. Only loopback is let through.
    fetch(url, options) {
      const host = new URL(url).hostname.replace(/^\[|\]$/g, '');
      if (LOOPBACK.has(host)) {
        const { dispatcher: _protected, ...rest } = options;
        return globalThis.fetch(url, rest);
      }
      return globalThis.fetch(url, options);
    },
    async findAccount(_ctx, sub) {
      const id = sub.startsWith(SUBJECT_PREFIX) ? sub.slice(SUBJECT_PREFIX.length) : '';
      if (!findPerson(id)) return undefined;
      return {
        accountId: sub,
        async claims() {
          const { id: _id, label: _label, ...claims } = findPerson(id);
          return { sub, ...claims };
        },
      };
    },
    // Consent is automatic: grant whatever the client asked for (skip_consent recipe).
    async loadExistingGrant(ctx) {
      const grantId = ctx.oidc.result?.consent?.grantId
        || ctx.oidc.session.grantIdFor(ctx.oidc.client.clientId);
      if (grantId) return ctx.oidc.provider.Grant.find(grantId);
      const grant = new ctx.oidc.provider.Grant({
        clientId: ctx.oidc.client.clientId,
        accountId: ctx.oidc.session.accountId,
      });
      grant.addOIDCScope([...ctx.oidc.requestParamScopes].join(' '));
      grant.addOIDCClaims([...ctx.oidc.requestParamClaims]);
      await grant.save();
      return grant;
    },
    async renderError(ctx, out) {
      ctx.type = 'html';
      const rows = Object.entries(out)
        .map(([k, v]) => `<li><b>${escapeHtml(k)}</b>: ${escapeHtml(v)}</li>`).join('');
      ctx.body = page('Error', `<ul>${rows}</ul>`);
    },
  };
  return new Provider(issuer, configuration);
}

// ---------------------------------------------------------------- interaction pages

async function readForm(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > 16384) throw new Error('form too large');
    chunks.push(chunk);
  }
  return new URLSearchParams(Buffer.concat(chunks).toString('utf8'));
}

function send(res, status, html) {
  res.writeHead(status, { 'Content-Type': 'text/html; charset=utf-8', 'Cache-Control': 'no-store' });
  res.end(html);
}

function ageOn(birthdate, today) {
  const birth = new Date(`${birthdate}T00:00:00Z`);
  let age = today.getUTCFullYear() - birth.getUTCFullYear();
  const before = today.getUTCMonth() < birth.getUTCMonth()
    || (today.getUTCMonth() === birth.getUTCMonth() && today.getUTCDate() < birth.getUTCDate());
  return before ? age - 1 : age;
}

async function interaction(provider, req, res, uid, action) {
  const details = await provider.interactionDetails(req, res);
  if (details.uid !== uid) throw new errors.SessionNotFound('interaction mismatch');
  if (req.method === 'GET' && !action) {
    const today = helsinkiToday();
    const buttons = persons().map((p) => `<li><form method="post" action="/interaction/${uid}/login">
<input type="hidden" name="person" value="${escapeHtml(p.id)}">
<button type="submit" name="choose" value="${escapeHtml(p.id)}">${escapeHtml(p.name)}</button>
${escapeHtml(p.personal_identity_code)} · ${ageOn(p.birthdate, today)} years · ${escapeHtml(p.label)}
</form></li>`).join('\n');
    const locales = details.params.ui_locales ? ` (ui_locales: ${escapeHtml(details.params.ui_locales)})` : '';
    send(res, 200, page('Choose a fictitious person', `<p>Client <code>${escapeHtml(details.params.client_id)}</code> asks for identification${locales}.</p>
<ul>${buttons}</ul>
<form method="post" action="/interaction/${uid}/abort"><button type="submit" name="cancel" value="1">Cancel</button></form>`));
    return;
  }
  if (req.method === 'POST' && action === 'login') {
    const person = findPerson((await readForm(req)).get('person') ?? '');
    if (!person) {
      send(res, 400, page('Unknown person', '<p>Go back and choose one of the listed persons.</p>'));
      return;
    }
    await provider.interactionFinished(req, res, {
      login: { accountId: SUBJECT_PREFIX + person.id, acr: ACR, amr: ['test'] },
    }, { mergeWithLastSubmission: false });
    return;
  }
  if (req.method === 'POST' && action === 'abort') {
    await readForm(req);
    await provider.interactionFinished(req, res, {
      error: 'access_denied',
      error_description: 'the person cancelled the identification',
    }, { mergeWithLastSubmission: false });
    return;
  }
  send(res, 405, page('Method not allowed', ''));
}

// ---------------------------------------------------------------- server

const server = http.createServer();
server.listen(Number(args.port), args.host, () => {
  const { port } = server.address();
  const host = args.host === '::1' ? '[::1]' : args.host;
  const issuer = `http://${host}:${port}`;
  const provider = buildProvider(issuer);
  // Refusals are what developers of a relying party need to see, with their cause.
  for (const event of ['authorization.error', 'grant.error', 'userinfo.error', 'server_error']) {
    provider.on(event, (_ctx, error) => {
      const detail = [error.error_description, error.error_detail];
      for (let cause = error.cause; cause; cause = cause.cause) {
        detail.push(cause.error_description ?? cause.message);
      }
      console.error(`${event}: ${error.message} (${detail.filter(Boolean).join(' — ')})`);
    });
  }
  const callback = provider.callback();
  server.on('request', async (req, res) => {
    const url = new URL(req.url, issuer);
    const match = url.pathname.match(/^\/interaction\/([\w-]+)(?:\/(login|abort))?$/);
    try {
      if (match) {
        await interaction(provider, req, res, match[1], match[2]);
      } else if (url.pathname === '/' && req.method === 'GET') {
        send(res, 200, page('Kanava development identity provider', `<p>Issuer: <code>${escapeHtml(issuer)}</code>.
Discovery: <a href="/.well-known/openid-configuration">/.well-known/openid-configuration</a>.</p>`));
      } else {
        callback(req, res);
      }
    } catch (error) {
      const status = error instanceof errors.OIDCProviderError ? error.statusCode : 500;
      send(res, status, page('Error', `<p>${escapeHtml(error.message)}</p>`));
    }
  });
  console.error(`${BANNER}: issuer ${issuer}`);
  console.log(`ready ${issuer}`);
});

for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => server.close(() => process.exit(0)));
  process.on(signal, () => setTimeout(() => process.exit(0), 1000).unref());
}
