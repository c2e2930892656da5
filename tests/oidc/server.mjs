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
//
// Clients (fixed test credentials, never used outside tests):
//   svc-basic / svc-basic-secret  client_secret_basic, client_credentials, scope "api.read api.write"
//   svc-post  / svc-post-secret   client_secret_post,  client_credentials, scope "api.read api.write"
//   app       / app-secret        client_secret_basic, authorization_code + refresh_token,
//                                 redirect_uri http://127.0.0.1/callback,
//                                 scope "openid offline_access api.read"
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
//                               OAuth error codes the token endpoint answered with;
//                               revocation_requests counts POSTs to the revocation endpoint
//   POST /__test/reset-stats    zeroes every counter; responds {}
//   GET  /__test/refresh-chain  {"refreshes":[{"used":RT,"access_token":AT,"refresh_token":RT'},...]}:
//                               every successful refresh_token grant in order, with the refresh
//                               token presented and the tokens issued for it (so a test can tell
//                               which refresh token is older than which access token)

import * as http from 'node:http';
import * as querystring from 'node:querystring';

// oidc-provider prints notices with console.info, which goes to stdout: stdout is reserved for the
// ready line, so route every console method to stderr before the provider is even loaded.
for (const method of ['log', 'info', 'debug']) {
  console[method] = (...args) => console.error(...args);
}

const { default: Provider, errors } = await import('oidc-provider');

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
const REFRESH_TOKEN_TTL = positiveIntFromEnv('REFRESH_TOKEN_TTL', 3600);

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
      grant_types: ['client_credentials'],
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
    resourceIndicators: {
      enabled: true,
      async defaultResource(ctx, _client, oneOf) {
        if (oneOf) return oneOf;
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
  rotateRefreshToken: true,
  ttl: {
    AccessToken: ACCESS_TOKEN_TTL,
    ClientCredentials: ACCESS_TOKEN_TTL,
    RefreshToken: REFRESH_TOKEN_TTL,
    Grant: Math.max(REFRESH_TOKEN_TTL, 14 * 24 * 60 * 60),
    IdToken: 3600,
    AuthorizationCode: 60,
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

// Successful refresh_token grants, in order (see GET /__test/refresh-chain).
const refreshChain = [];

let provider;
let providerCallback;
let tokenPath;
let revocationPath;

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
  const { pathname } = new URL(req.url, 'http://127.0.0.1');

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
    req.body = body;
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

  tokenPath = new URL(provider.urlFor('token')).pathname;
  revocationPath = new URL(provider.urlFor('revocation')).pathname;
  providerCallback = provider.callback();

  process.stdout.write(`${JSON.stringify({ issuer })}\n`);
  console.error(`oidc test server ready: issuer ${issuer}, ACCESS_TOKEN_TTL=${ACCESS_TOKEN_TTL}, REFRESH_TOKEN_TTL=${REFRESH_TOKEN_TTL}`);
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
