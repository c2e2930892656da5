// Test-only OAuth 2.0 authorization server for tokend's end-to-end tests.
//
// This is panva's `oidc-provider` (pinned in package.json), an independently written,
// standards-conformant implementation, wrapped in a plain node:http server that also serves a few
// test-only admin routes. It is started by the Rust fixture in `tests/src/oidc.rs`; install its
// dependencies once with `npm ci --prefix tests/oidc`.
//
// Protocol with the parent process:
//   * listens on 127.0.0.1 on an ephemeral port; the issuer is `http://127.0.0.1:<port>`;
//   * prints exactly one line on stdout when ready: {"issuer":"http://127.0.0.1:<port>"};
//     everything else (oidc-provider's notices and warnings included) goes to stderr;
//   * exits when its stdin closes (the parent dropped the pipe or died), on SIGTERM and on SIGINT.
//     Set EXIT_ON_STDIN_CLOSE=0 to run it by hand with stdin detached.
//
// Environment:
//   ACCESS_TOKEN_TTL   lifetime in seconds of every access token (client credentials and
//                      refresh-token grants alike); default 60
//   REFRESH_TOKEN_TTL  lifetime in seconds of refresh tokens; default 3600
//   DEVICE_CODE_TTL    lifetime in seconds of device codes (RFC 8628); default 600. An expired
//                      device code is answered `expired_token` (for 15 s more, oidc-provider's
//                      clockTolerance; after that the code is forgotten: `invalid_grant`)
//   DEVICE_INTERVAL    when set, the device authorization response carries `interval` with this
//                      many seconds; unset, the response has no `interval` (RFC 8628: clients then
//                      poll every 5 s)
//   DEVICE_SLOW_DOWN   `1` makes the token endpoint answer `slow_down` (400) to a device_code poll
//                      that comes sooner than the device code's current interval after the
//                      previous poll of that code, and adds 5 s to that code's interval (RFC 8628
//                      §3.5). oidc-provider itself never answers `slow_down`; unset (the default),
//                      polls are never throttled
//   DEVICE_MIN_INTERVAL with DEVICE_SLOW_DOWN=1: the interval the server enforces instead, fixed
//                      (it does not grow after a `slow_down`), so a test can advertise a shorter
//                      DEVICE_INTERVAL and see whether a client backs off after one `slow_down`
//   AZURE_TENANT       when set, the server also serves the Azure AD v2.0 endpoint layout for that
//                      tenant (see "Azure AD layout" below)
//   ID_TOKEN_TTL       lifetime in seconds of id_tokens (issued with the `openid` scope by the
//                      authorization code, device and refresh token grants); default 3600
//
// Clients (fixed test credentials, never used outside tests):
//   svc-basic / svc-basic-secret  client_secret_basic, client_credentials, scope "api.read api.write"
//   svc-post  / svc-post-secret   client_secret_post,  client_credentials, scope "api.read api.write"
//   app       / app-secret        client_secret_basic, authorization_code + refresh_token,
//                                 redirect_uri http://127.0.0.1/callback,
//                                 scope "openid offline_access api.read"
//   cli       (no secret)         public native client (token_endpoint_auth_method "none",
//                                 application_type "native"): authorization_code (PKCE S256
//                                 required, "plain" refused), refresh_token and the device flow
//                                 (urn:ietf:params:oauth:grant-type:device_code); redirect_uri
//                                 http://127.0.0.1/callback, accepted on ANY port (RFC 8252 §7.3,
//                                 oidc-provider does this for native clients' loopback URIs);
//                                 scope "openid offline_access api.read". Sends `client_id` in the
//                                 form at the token, device authorization and revocation endpoints
//   pkjwt     (no secret)         private_key_jwt (RFC 7523 §2.2), assertions signed RS256 with
//                                 ../fixtures/oidc/pkjwt-private.pem (PKCS#8; public half
//                                 pkjwt-public.jwk.json, kid "pkjwt-test-key"): client_credentials,
//                                 authorization_code, refresh_token, device_code; redirect_uri as
//                                 cli; scope "openid offline_access api.read api.write". Assertion:
//                                 iss = sub = "pkjwt", aud = the token endpoint URL or the issuer
//                                 (with AZURE_TENANT also the Azure token URL), exp, unique jti
//   sa        (no secret)         public client for the jwt-bearer grant only (below); sends
//                                 `client_id=sa` in the form; scope "api.read api.write"
//   svc-basic (above) may use the jwt-bearer grant too, authenticating with its secret
//   exchanger / exchanger-secret  client_secret_post, the token exchange grant only (below);
//                                 scope "api.read api.write"
//
// JWT bearer authorization grant (RFC 7523 §2.1, grant_type
// urn:ietf:params:oauth:grant-type:jwt-bearer, form parameter `assertion`; oidc-provider has no
// implementation, this script registers one): the assertion must be RS256-signed with
// ../fixtures/oidc/jwt-bearer-private.pem (PKCS#8; public half jwt-bearer-public.jwk.json), with
// iss = "svc-account@tokend.test" (SERVICE_ACCOUNT), a non-empty `sub`, aud = the token endpoint
// URL or the issuer (with AZURE_TENANT also the Azure token URL), `exp` in the future and at most
// 3600 s ahead, `iat` not in the future, and a `jti` never seen before. Anything else is
// `invalid_grant` with an error_description saying why. The answer is a Bearer JWT access token
// for DEFAULT_RESOURCE (sub = the assertion's sub, client_id = the authenticated client) living
// ACCESS_TOKEN_TTL seconds, scope = the `scope` parameter (default "api.read api.write"; a scope
// outside "api.read api.write" is `invalid_scope`); no refresh token.
//
// Token exchange grant (RFC 8693, grant_type urn:ietf:params:oauth:grant-type:token-exchange;
// oidc-provider has no implementation, this script registers one): `subject_token` must be a JWT
// access token this server issued (signature checked against its own JWKS, `iss` = the issuer,
// not expired) with `subject_token_type` urn:ietf:params:oauth:token-type:jwt or
// …:access_token; an `actor_token` (optional, with `actor_token_type`) is checked the same way.
// The answer is a Bearer JWT access token for `audience` when it is a known resource (below),
// else for `resource` when given and known, else DEFAULT_RESOURCE; `sub` = the subject token's
// `sub`, client_id = the authenticated client, living ACCESS_TOKEN_TTL seconds, with
// `issued_token_type` …:access_token. Anything else is `invalid_request` / `invalid_grant` /
// `invalid_target` with a description. The last exchange's parameters and the subject's and
// actor's `sub` are in GET /__test/stats as `last_exchange`.
//
// Device flow (RFC 8628): device authorization endpoint /device/auth, user page /device (the
// user-code form, then a confirmation form, then devInteractions' login and consent). Polling an
// unapproved code answers `authorization_pending`; a denied one `access_denied`; an expired one
// `expired_token`; an approved one the tokens (a refresh token with offline_access, no prompt
// rule here), once: polling it again is `invalid_grant` and revokes everything it yielded (as
// does reusing an authorization code). `slow_down` only with DEVICE_SLOW_DOWN=1.
//
// Azure AD layout (AZURE_TENANT=<tenant>): these paths are rewritten onto the provider's own
// endpoints before it sees the request (query strings kept):
//   /<tenant>/oauth2/v2.0/authorize   -> /auth
//   /<tenant>/oauth2/v2.0/token       -> /token
//   /<tenant>/oauth2/v2.0/devicecode  -> /device/auth
//   /<tenant>/oauth2/v2.0/logout      -> /session/end
// The "authority" is the issuer (http://127.0.0.1:<port>). Issued tokens still name the issuer.
//
// Authorization requests: oidc-provider (OpenID Connect Core §11) only keeps `offline_access`, and
// so only issues a refresh token, when the request says `prompt=consent`; this wrapper adds
// `prompt=consent` to a GET authorization request that asks for offline_access and has no
// `prompt` at all, so a plain OAuth client gets its refresh token. An authorization or device
// authorization request without `resource` is given DEFAULT_RESOURCE: the code exchange yields a
// JWT access token for it (scope api.read) plus, with offline_access, a refresh token bound to it.
//
// Resources (RFC 8707 resource indicators): any absolute https URI whose host is `example.test` or
// ends in `.example.test` is a known resource server with scopes "api.read api.write", issuing
// JWT access tokens (RS256, with `exp`) that live ACCESS_TOKEN_TTL seconds. Any other resource is
// rejected with `invalid_target`. A client_credentials request without `resource` is given
// DEFAULT_RESOURCE (below), or the value of a non-standard `audience` form parameter when present
// (Auth0-style clients send that), so every client_credentials access token is a JWT.
//
// Test-only admin routes (same port, handled before the provider sees the request):
//   POST /__test/refresh-token  mints a refresh token for account `tester` and client `app`
//                               (scopes "openid offline_access api.read", bound to
//                               DEFAULT_RESOURCE); responds {"refresh_token":"..."}
//   GET  /__test/stats          {"token_requests":N,"token_requests_done":N,"by_grant":{"client_credentials":n,...},
//                                "by_auth_method":{"client_secret_basic":n,...},"failures":n,
//                                "errors":{"invalid_grant":n,...},"revocation_requests":n}
//                               token_requests counts every POST to the token endpoint,
//                               token_requests_done those fully handled (answered, or their
//                               client gone), by_grant
//                               by form grant_type ("unknown" if absent or unparsable),
//                               by_auth_method by how the client authenticated (Authorization:
//                               Basic, client_secret in the form, client_assertion, or "none"),
//                               failures those answered with an HTTP status >= 400, errors the
//                               OAuth error codes the token endpoint answered with (slow_down
//                               included);
//                               revocation_requests counts POSTs to the revocation endpoint,
//                               last_assertion the {jti, iss, sub} of the last client assertion
//                               sent (decoded as sent, before any check)
//   POST /__test/reset-stats    zeroes every counter; responds {}
//   GET  /__test/refresh-chain  {"refreshes":[{"used":RT,"access_token":AT,"refresh_token":RT'},...]}:
//                               every successful refresh_token grant in order, with the refresh
//                               token presented and the tokens issued for it (so a test can tell
//                               which refresh token is older than which access token)
// Requests on the Azure paths are counted as the endpoints they are rewritten to.

import * as fs from 'node:fs';
import * as http from 'node:http';
import * as querystring from 'node:querystring';

// oidc-provider prints notices with console.info, which goes to stdout: stdout is reserved for the
// ready line, so route every console method to stderr before the provider is even loaded.
for (const method of ['log', 'info', 'debug']) {
  console[method] = (...args) => console.error(...args);
}

const { default: Provider, errors } = await import('oidc-provider');
// oidc-provider's own JOSE library (a dependency of it, not of this package).
const jose = await import('jose');

const DEFAULT_RESOURCE = 'https://api.example.test';
const RESOURCE_SCOPE = 'api.read api.write';
const BODY_LIMIT = 56 * 1024;

function positiveIntFromEnv(name, fallback) {
  const raw = process.env[name];
  if (raw === undefined || raw === '') return fallback;
  const value = Number(raw);
  if (!Number.isSafeInteger(value) || value <= 0) {
    console.error(`${name} must be a positive integer number of seconds, got ${JSON.stringify(raw)}`);
    process.exit(2);
  }
  return value;
}

const ACCESS_TOKEN_TTL = positiveIntFromEnv('ACCESS_TOKEN_TTL', 60);
const ID_TOKEN_TTL = positiveIntFromEnv('ID_TOKEN_TTL', 3600);
const REFRESH_TOKEN_TTL = positiveIntFromEnv('REFRESH_TOKEN_TTL', 3600);
const DEVICE_CODE_TTL = positiveIntFromEnv('DEVICE_CODE_TTL', 600);
const DEVICE_INTERVAL = positiveIntFromEnv('DEVICE_INTERVAL', undefined);
const DEVICE_SLOW_DOWN = process.env.DEVICE_SLOW_DOWN === '1';
const DEVICE_MIN_INTERVAL = positiveIntFromEnv('DEVICE_MIN_INTERVAL', undefined);
const AZURE_TENANT = process.env.AZURE_TENANT || undefined;
if (AZURE_TENANT !== undefined && !/^[A-Za-z0-9._-]+$/.test(AZURE_TENANT)) {
  console.error(`AZURE_TENANT must be a plain path segment, got ${JSON.stringify(AZURE_TENANT)}`);
  process.exit(2);
}

const SERVICE_ACCOUNT = 'svc-account@tokend.test';
const JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer';
const TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange';
const TOKEN_TYPE_JWT = 'urn:ietf:params:oauth:token-type:jwt';
const TOKEN_TYPE_ACCESS = 'urn:ietf:params:oauth:token-type:access_token';
const DEVICE_CODE = 'urn:ietf:params:oauth:grant-type:device_code';
// The most an assertion's `exp` may lie ahead, and the clock skew allowed on `iat`/`exp`.
const JWT_BEARER_MAX_LIFETIME = 3600;
const JWT_BEARER_SKEW = 5;

const FIXTURES = new URL('../fixtures/oidc/', import.meta.url);
function fixtureJwk(name) {
  return JSON.parse(fs.readFileSync(new URL(name, FIXTURES), 'utf8'));
}
const PKJWT_JWK = fixtureJwk('pkjwt-public.jwk.json');
const JWT_BEARER_JWK = fixtureJwk('jwt-bearer-public.jwk.json');
const jwtBearerKey = await jose.importJWK(JWT_BEARER_JWK, 'RS256');

function isKnownResource(identifier) {
  const url = URL.parse(identifier);
  return url !== null
    && url.protocol === 'https:'
    && (url.hostname === 'example.test' || url.hostname.endsWith('.example.test'));
}

// ---- statistics -------------------------------------------------------------------------------

let stats;
function resetStats() {
  stats = {
    token_requests: 0,
    token_requests_done: 0,
    by_grant: {},
    by_auth_method: {},
    failures: 0,
    errors: {},
    revocation_requests: 0,
    last_exchange: null,
    last_assertion: null,
  };
}
resetStats();

// ---- the provider -----------------------------------------------------------------------------

const configuration = {
  clients: [
    {
      client_id: 'svc-basic',
      client_secret: 'svc-basic-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['client_credentials', JWT_BEARER],
      response_types: [],
      redirect_uris: [],
      scope: 'api.read api.write',
    },
    {
      client_id: 'svc-post',
      client_secret: 'svc-post-secret',
      token_endpoint_auth_method: 'client_secret_post',
      grant_types: ['client_credentials'],
      response_types: [],
      redirect_uris: [],
      scope: 'api.read api.write',
    },
    {
      client_id: 'app',
      client_secret: 'app-secret',
      token_endpoint_auth_method: 'client_secret_basic',
      grant_types: ['authorization_code', 'refresh_token'],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
      scope: 'openid offline_access api.read',
    },
    {
      client_id: 'cli',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code', 'refresh_token', DEVICE_CODE],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
      scope: 'openid offline_access api.read',
    },
    {
      client_id: 'pkjwt',
      application_type: 'native',
      token_endpoint_auth_method: 'private_key_jwt',
      token_endpoint_auth_signing_alg: 'RS256',
      jwks: { keys: [PKJWT_JWK] },
      grant_types: ['client_credentials', 'authorization_code', 'refresh_token', DEVICE_CODE],
      response_types: ['code'],
      redirect_uris: ['http://127.0.0.1/callback'],
      scope: 'openid offline_access api.read api.write',
    },
    {
      client_id: 'sa',
      token_endpoint_auth_method: 'none',
      grant_types: [JWT_BEARER],
      response_types: [],
      redirect_uris: [],
      scope: 'api.read api.write',
    },
    {
      client_id: 'exchanger',
      client_secret: 'exchanger-secret',
      token_endpoint_auth_method: 'client_secret_post',
      grant_types: [TOKEN_EXCHANGE],
      response_types: [],
      redirect_uris: [],
      scope: 'api.read api.write',
    },
  ],
  // The API scopes are also "static" scopes: that way the provider checks them against each
  // client's `scope` allow-list (it only does so for static scopes), and they survive when no
  // resource server is involved.
  scopes: ['openid', 'offline_access', 'api.read', 'api.write'],
  claims: { openid: ['sub'] },
  async findAccount(_ctx, sub) {
    return { accountId: sub, async claims() { return { sub }; } };
  },
  features: {
    clientCredentials: { enabled: true },
    introspection: { enabled: true },
    revocation: { enabled: true },
    devInteractions: { enabled: true },
    deviceFlow: { enabled: true },
    resourceIndicators: {
      enabled: true,
      async defaultResource(ctx, _client, oneOf) {
        if (oneOf) return oneOf;
        // Authorization and device authorization requests (no grant_type) default to
        // DEFAULT_RESOURCE too, so that the code / device code they yield gets a JWT access
        // token for it (and api.read) rather than an opaque userinfo-only token. Refresh,
        // authorization_code and device_code grants use the resource of their grant
        // (useGrantedResource).
        if (ctx.oidc.params.grant_type === undefined) return DEFAULT_RESOURCE;
        if (ctx.oidc.params.grant_type !== 'client_credentials') return undefined;
        // `audience` is not a parameter oidc-provider knows (it strips unknown parameters), but
        // the raw form body is still there.
        const { audience } = ctx.oidc.body ?? {};
        return typeof audience === 'string' && audience !== '' ? audience : DEFAULT_RESOURCE;
      },
      // Refresh tokens minted with a resource keep getting access tokens for it.
      async useGrantedResource() {
        return true;
      },
      async getResourceServerInfo(_ctx, resourceIndicator) {
        if (!isKnownResource(resourceIndicator)) {
          throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
        }
        return {
          scope: RESOURCE_SCOPE,
          accessTokenTTL: ACCESS_TOKEN_TTL,
          accessTokenFormat: 'jwt',
        };
      },
    },
  },
  // S256 only (oidc-provider refuses "plain" anyway); required for public clients (cli), optional
  // for confidential ones (app, pkjwt): oidc-provider's default policy, spelled out.
  pkce: {
    required(_ctx, client) {
      return client.clientAuthMethod === 'none';
    },
  },
  rotateRefreshToken: true,
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    ClientCredentials: ACCESS_TOKEN_TTL,
    RefreshToken: REFRESH_TOKEN_TTL,
    Grant: Math.max(REFRESH_TOKEN_TTL, 14 * 24 * 60 * 60),
    IdToken: ID_TOKEN_TTL,
    AuthorizationCode: 60,
    DeviceCode: DEVICE_CODE_TTL,
    Interaction: 3600,
    Session: 24 * 60 * 60,
  },
};

// ---- the http wrapper -------------------------------------------------------------------------

function sendJson(res, status, value) {
  const body = JSON.stringify(value);
  res.writeHead(status, {
    'content-type': 'application/json; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  });
  res.end(body);
}

async function readBody(req) {
  const chunks = [];
  let received = 0;
  for await (const chunk of req) {
    received += chunk.length;
    if (received > BODY_LIMIT) throw new Error('request entity too large');
    chunks.push(chunk);
  }
  return Buffer.concat(chunks, received);
}

function authMethodOf(req, form) {
  if (/^basic /i.test(req.headers.authorization ?? '')) return 'client_secret_basic';
  if (form.client_secret !== undefined) return 'client_secret_post';
  if (form.client_assertion !== undefined) return 'client_assertion';
  return 'none';
}

// The `jti`, `iss` and `sub` of a client assertion as sent (decoded, not verified: the provider
// verifies it), for GET /__test/stats; null for one that is not a readable JWT.
function assertionSummary(assertion) {
  try {
    const claims = JSON.parse(Buffer.from(String(assertion).split('.')[1], 'base64url').toString('utf8'));
    return { jti: claims.jti ?? null, iss: claims.iss ?? null, sub: claims.sub ?? null };
  } catch {
    return null;
  }
}

// Successful refresh_token grants, in order (see GET /__test/refresh-chain).
const refreshChain = [];

let provider;
let providerCallback;
let tokenPath;
let revocationPath;
let authorizationPath;
let tokenUrl;
let azureTokenUrl;
// Azure AD v2.0 path -> the provider's own path (AZURE_TENANT only).
const azurePaths = new Map();

// ---- the JWT bearer grant (RFC 7523 §2.1) -------------------------------------------------------

// jti -> exp (epoch seconds) of every accepted assertion, until it could no longer be valid.
const seenJtis = new Map();

function invalidGrant(description) {
  return new errors.CustomOIDCProviderError('invalid_grant', description);
}

async function jwtBearerGrant(ctx) {
  const { assertion, scope } = ctx.oidc.params;
  if (!assertion) throw new errors.InvalidRequest("missing required parameter 'assertion'");

  let payload;
  try {
    ({ payload } = await jose.jwtVerify(assertion, jwtBearerKey, {
      algorithms: ['RS256'],
      issuer: SERVICE_ACCOUNT,
      audience: [tokenUrl, provider.issuer, azureTokenUrl].filter(Boolean),
      requiredClaims: ['sub', 'exp', 'iat', 'jti'],
      clockTolerance: JWT_BEARER_SKEW,
    }));
  } catch (err) {
    throw invalidGrant(`assertion rejected: ${err.code ?? err.name}: ${err.message}`);
  }
  const now = Math.floor(Date.now() / 1000);
  if (typeof payload.sub !== 'string' || payload.sub === '') throw invalidGrant('assertion sub must be a non-empty string');
  if (typeof payload.jti !== 'string' || payload.jti === '') throw invalidGrant('assertion jti must be a non-empty string');
  if (payload.exp > now + JWT_BEARER_MAX_LIFETIME + JWT_BEARER_SKEW) {
    throw invalidGrant(`assertion exp is more than ${JWT_BEARER_MAX_LIFETIME} s ahead`);
  }
  if (payload.iat > now + JWT_BEARER_SKEW) throw invalidGrant('assertion iat is in the future');
  for (const [jti, exp] of seenJtis) {
    if (exp + JWT_BEARER_SKEW < now) seenJtis.delete(jti);
  }
  if (seenJtis.has(payload.jti)) throw invalidGrant(`assertion jti ${payload.jti} was already used`);
  seenJtis.set(payload.jti, payload.exp);

  const allowed = new Set(RESOURCE_SCOPE.split(' '));
  const clientScopes = new Set((ctx.oidc.client.scope ?? '').split(' '));
  const requested = scope ? [...new Set(scope.split(' ').filter(Boolean))] : [...allowed];
  for (const s of requested) {
    if (!allowed.has(s) || !clientScopes.has(s)) {
      throw new errors.InvalidScope('requested scope is not allowed', s);
    }
  }

  const token = new provider.AccessToken({
    accountId: payload.sub,
    client: ctx.oidc.client,
    gty: 'jwt-bearer',
    scope: requested.join(' ') || undefined,
  });
  token.resourceServer = new provider.ResourceServer(DEFAULT_RESOURCE, {
    scope: RESOURCE_SCOPE,
    accessTokenTTL: ACCESS_TOKEN_TTL,
    accessTokenFormat: 'jwt',
  });
  const value = await token.save();
  ctx.body = {
    access_token: value,
    token_type: 'Bearer',
    expires_in: token.expiration,
    ...(token.scope ? { scope: token.scope } : undefined),
  };
}

// ---- the token exchange grant (RFC 8693) ---------------------------------------------------------

let ownKeys;

async function verifyOwnToken(token, type, name) {
  if (typeof token !== 'string' || token === '') {
    throw new errors.InvalidRequest(`missing required parameter '${name}'`);
  }
  if (type !== TOKEN_TYPE_JWT && type !== TOKEN_TYPE_ACCESS) {
    throw new errors.InvalidRequest(`unsupported ${name}_type ${JSON.stringify(type)}`);
  }
  ownKeys ??= jose.createRemoteJWKSet(new URL(provider.urlFor('jwks')));
  try {
    const { payload } = await jose.jwtVerify(token, ownKeys, { issuer: provider.issuer });
    if (typeof payload.sub !== 'string' || payload.sub === '') throw new Error('no sub');
    return payload;
  } catch (err) {
    throw invalidGrant(`${name} rejected: ${err.code ?? err.name}: ${err.message}`);
  }
}

async function tokenExchangeGrant(ctx) {
  const params = ctx.oidc.params;
  const subject = await verifyOwnToken(params.subject_token, params.subject_token_type, 'subject_token');
  let actor;
  if (params.actor_token !== undefined) {
    actor = await verifyOwnToken(params.actor_token, params.actor_token_type, 'actor_token');
  }
  let resource = DEFAULT_RESOURCE;
  for (const candidate of [params.audience, params.resource]) {
    if (candidate === undefined) continue;
    if (!isKnownResource(candidate)) {
      throw new errors.InvalidTarget(`unknown audience or resource ${candidate}`);
    }
    resource = candidate;
    break;
  }
  const allowed = new Set(RESOURCE_SCOPE.split(' '));
  const requested = params.scope ? [...new Set(params.scope.split(' ').filter(Boolean))] : [...allowed];
  for (const s of requested) {
    if (!allowed.has(s)) throw new errors.InvalidScope('requested scope is not allowed', s);
  }
  stats.last_exchange = {
    client_id: ctx.oidc.client.clientId,
    subject: subject.sub,
    subject_token_type: params.subject_token_type,
    actor: actor?.sub ?? null,
    actor_token_type: params.actor_token_type ?? null,
    requested_token_type: params.requested_token_type ?? null,
    audience: params.audience ?? null,
    resource: params.resource ?? null,
    scope: params.scope ?? null,
  };
  const token = new provider.AccessToken({
    accountId: subject.sub,
    client: ctx.oidc.client,
    gty: 'token-exchange',
    scope: requested.join(' ') || undefined,
  });
  token.resourceServer = new provider.ResourceServer(resource, {
    scope: RESOURCE_SCOPE,
    accessTokenTTL: ACCESS_TOKEN_TTL,
    accessTokenFormat: 'jwt',
  });
  const value = await token.save();
  ctx.body = {
    access_token: value,
    issued_token_type: TOKEN_TYPE_ACCESS,
    token_type: 'Bearer',
    expires_in: token.expiration,
    ...(token.scope ? { scope: token.scope } : undefined),
  };
}

// ---- device-flow throttling (DEVICE_SLOW_DOWN) ---------------------------------------------------

// device_code -> { last: ms of the previous poll, interval: seconds }
const devicePolls = new Map();

function slowDown(deviceCode) {
  const now = Date.now();
  for (const [code, poll] of devicePolls) {
    if (now - poll.last > DEVICE_CODE_TTL * 1000 + 60_000) devicePolls.delete(code);
  }
  const poll = devicePolls.get(deviceCode);
  if (poll === undefined) {
    devicePolls.set(deviceCode, { last: now, interval: DEVICE_MIN_INTERVAL ?? DEVICE_INTERVAL ?? 5 });
    return false;
  }
  const early = now - poll.last < poll.interval * 1000;
  poll.last = now;
  if (early && DEVICE_MIN_INTERVAL === undefined) poll.interval += 5;
  return early;
}

async function mintRefreshToken() {
  const client = await provider.Client.find('app');
  const scope = 'openid offline_access api.read';
  const grant = new provider.Grant({ accountId: 'tester', clientId: client.clientId });
  grant.addOIDCScope(scope);
  grant.addResourceScope(DEFAULT_RESOURCE, 'api.read');
  const grantId = await grant.save();
  const refreshToken = new provider.RefreshToken({
    accountId: 'tester',
    client,
    grantId,
    gty: 'authorization_code',
    scope,
    resource: DEFAULT_RESOURCE,
    authTime: Math.floor(Date.now() / 1000),
    expiresWithSession: false,
    rotations: 0,
  });
  return refreshToken.save();
}

async function handleAdmin(req, res, pathname) {
  if (pathname === '/__test/stats' && req.method === 'GET') {
    return sendJson(res, 200, stats);
  }
  if (pathname === '/__test/reset-stats' && req.method === 'POST') {
    resetStats();
    return sendJson(res, 200, {});
  }
  if (pathname === '/__test/refresh-chain' && req.method === 'GET') {
    return sendJson(res, 200, { refreshes: refreshChain });
  }
  if (pathname === '/__test/refresh-token' && req.method === 'POST') {
    return sendJson(res, 200, { refresh_token: await mintRefreshToken() });
  }
  return sendJson(res, 404, { error: 'not_found', error_description: `no test route ${req.method} ${pathname}` });
}

async function handle(req, res) {
  let { pathname, search } = new URL(req.url, 'http://127.0.0.1');

  const azureTarget = azurePaths.get(pathname);
  if (azureTarget !== undefined) {
    pathname = azureTarget;
    req.url = `${azureTarget}${search}`;
  }

  // oidc-provider follows OpenID Connect Core §11 and drops `offline_access` (so: no refresh
  // token) from an authorization request without `prompt=consent`. Most OAuth servers (Azure AD
  // among them) do not ask for that, so a request for offline_access without any `prompt` gets
  // `prompt=consent` added (consent is asked for in a fresh session anyway).
  if (req.method === 'GET' && pathname === authorizationPath) {
    const params = new URLSearchParams(search);
    if (!params.has('prompt') && (params.get('scope') ?? '').split(' ').includes('offline_access')) {
      params.set('prompt', 'consent');
      req.url = `${pathname}?${params}`;
    }
  }

  if (pathname.startsWith('/__test/')) {
    return handleAdmin(req, res, pathname);
  }

  if (req.method === 'POST' && pathname === revocationPath) {
    stats.revocation_requests += 1;
  }

  if (req.method === 'POST' && pathname === tokenPath) {
    stats.token_requests += 1;
    res.on('finish', () => {
      if (res.statusCode >= 400) stats.failures += 1;
    });
    // Also when the client went away before the answer: then the grant may still have run.
    res.on('close', () => {
      stats.token_requests_done += 1;
    });
    // Read the body here to count by grant type, then hand it to the provider as an already
    // parsed body (oidc-provider uses `req.body` when the stream has been consumed).
    let body;
    try {
      body = await readBody(req);
    } catch (err) {
      stats.by_grant.unknown = (stats.by_grant.unknown ?? 0) + 1;
      return sendJson(res, 400, { error: 'invalid_request', error_description: err.message });
    }
    const form = querystring.parse(body.toString('utf8'));
    const grantType = String(form.grant_type ?? 'unknown');
    stats.by_grant[grantType] = (stats.by_grant[grantType] ?? 0) + 1;
    // oidc-provider accepts client_secret_basic and client_secret_post interchangeably, whatever
    // the client registered, so record which one the caller actually used.
    const authMethod = authMethodOf(req, form);
    stats.by_auth_method[authMethod] = (stats.by_auth_method[authMethod] ?? 0) + 1;
    if (authMethod === 'client_assertion') stats.last_assertion = assertionSummary(form.client_assertion);
    req.body = body;

    if (DEVICE_SLOW_DOWN && grantType === DEVICE_CODE && typeof form.device_code === 'string'
        && slowDown(form.device_code)) {
      stats.errors.slow_down = (stats.errors.slow_down ?? 0) + 1;
      return sendJson(res, 400, { error: 'slow_down', error_description: 'you are polling too quickly and should back off at a reasonable rate' });
    }
  }

  return providerCallback(req, res);
}

const server = http.createServer((req, res) => {
  handle(req, res).catch((err) => {
    console.error('test server error:', err);
    if (!res.headersSent) sendJson(res, 500, { error: 'server_error', error_description: String(err) });
    else res.destroy();
  });
});

server.listen(0, '127.0.0.1', () => {
  const { port } = server.address();
  const issuer = `http://127.0.0.1:${port}`;
  provider = new Provider(issuer, configuration);
  provider.registerGrantType(JWT_BEARER, jwtBearerGrant, ['assertion', 'scope']);
  provider.registerGrantType(TOKEN_EXCHANGE, tokenExchangeGrant, [
    'subject_token', 'subject_token_type', 'actor_token', 'actor_token_type',
    'requested_token_type', 'audience', 'resource', 'scope',
  ]);

  tokenUrl = provider.urlFor('token');
  if (AZURE_TENANT !== undefined) {
    const base = `/${AZURE_TENANT}/oauth2/v2.0`;
    azureTokenUrl = `${issuer}${base}/token`;
    for (const [azure, route] of [['authorize', 'authorization'], ['token', 'token'],
      ['devicecode', 'device_authorization'], ['logout', 'end_session']]) {
      azurePaths.set(`${base}/${azure}`, new URL(provider.urlFor(route)).pathname);
    }
    // private_key_jwt assertions addressed to the Azure token URL (what an Azure client puts in
    // `aud`) are accepted as well as the provider's own token URL and issuer.
    const expected = provider.OIDCContext.prototype.clientJwtAuthExpectedAudience;
    provider.OIDCContext.prototype.clientJwtAuthExpectedAudience = function azureAudience() {
      return expected.call(this).add(azureTokenUrl);
    };
  }

  if (DEVICE_INTERVAL !== undefined) {
    provider.on('device_authorization.success', (_ctx, body) => {
      body.interval = DEVICE_INTERVAL;
    });
  }

  provider.on('grant.error', (_ctx, err) => {
    const code = err.error ?? 'unknown';
    stats.errors[code] = (stats.errors[code] ?? 0) + 1;
    // `error_detail` carries the real reason where the response only says "grant request is
    // invalid" (oidc-provider hides invalid_grant details from clients).
    console.error(`token endpoint error: ${code}: ${err.error_description ?? err.message}${err.error_detail ? ` (${err.error_detail})` : ''}`);
  });
  provider.on('grant.success', (ctx) => {
    if (ctx.oidc.params.grant_type !== 'refresh_token') return;
    refreshChain.push({
      used: ctx.oidc.params.refresh_token,
      access_token: ctx.body?.access_token,
      refresh_token: ctx.body?.refresh_token,
    });
  });
  provider.on('server_error', (_ctx, err) => console.error('provider server_error:', err));

  tokenPath = new URL(tokenUrl).pathname;
  authorizationPath = new URL(provider.urlFor('authorization')).pathname;
  revocationPath = new URL(provider.urlFor('revocation')).pathname;
  providerCallback = provider.callback();

  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
  console.error(`oidc test server ready: issuer ${issuer}, ACCESS_TOKEN_TTL=${ACCESS_TOKEN_TTL}, REFRESH_TOKEN_TTL=${REFRESH_TOKEN_TTL}, DEVICE_CODE_TTL=${DEVICE_CODE_TTL}, DEVICE_INTERVAL=${DEVICE_INTERVAL ?? 'unset'}, DEVICE_SLOW_DOWN=${DEVICE_SLOW_DOWN}, AZURE_TENANT=${AZURE_TENANT ?? 'unset'}, ID_TOKEN_TTL=${ID_TOKEN_TTL}`);
});

// ---- shutdown -----------------------------------------------------------------------------------

function shutdown(why) {
  console.error(`oidc test server exiting: ${why}`);
  server.closeAllConnections?.();
  server.close();
  process.exit(0);
}

process.on('SIGTERM', () => shutdown('SIGTERM'));
process.on('SIGINT', () => shutdown('SIGINT'));

if (process.env.EXIT_ON_STDIN_CLOSE !== '0') {
  process.stdin.on('end', () => shutdown('stdin closed'));
  process.stdin.on('close', () => shutdown('stdin closed'));
  process.stdin.on('error', () => shutdown('stdin error'));
  process.stdin.resume();
}
