import { copyFileSync, mkdtempSync, rmSync, chmodSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig, ConfigError } from '../../src/config';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { createServer } from '../../src/app/server';
import { createTollgate, httpsRefusal, type Tollgate } from '../../src/index';
import { generateKey } from '../../src/keys/format';
import { openTestDatabase, testConfig, useTestServer, type TestDatabase } from '../support/harness';
import { fingerprint, httpsRequest, makeCertificate } from '../support/tls';

// Issue #27, transport: HTTPS served by the bundled server (HSTS, reload), REQUIRE_HTTPS refusing a
// key over plain HTTP before it is read, CORS for browser origins, and /metrics not public in
// production. Real TLS (a certificate made by openssl for the test), real HTTP.

const ME = '{ me { id } }';
let dir: string;
let first: ReturnType<typeof makeCertificate>;
let second: ReturnType<typeof makeCertificate>;

beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-tls-'));
  first = makeCertificate(dir, 'first');
  second = makeCertificate(dir, 'second');
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** The TLS files the server is configured with: copies, so a test can replace them under it. */
function servedFiles(name: string) {
  const certFile = path.join(dir, `${name}-served.pem`);
  const keyFile = path.join(dir, `${name}-served-key.pem`);
  copyFileSync(first.certFile, certFile);
  copyFileSync(first.keyFile, keyFile);
  return { certFile, keyFile };
}

describe('HTTPS served by the bundled server (TLS_CERT_FILE, TLS_KEY_FILE)', () => {
  let files: { certFile: string; keyFile: string };
  const server = useTestServer({
    get env() {
      files ??= servedFiles('https');
      return { TLS_CERT_FILE: files.certFile, TLS_KEY_FILE: files.keyFile, REQUIRE_HTTPS: 'true' };
    },
  });

  it('serves GraphQL over HTTPS with the configured certificate, and HSTS (six months) on every answer', async () => {
    expect(server.t.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const answer = await httpsRequest(`${server.t.url}/graphql`, { ca: first.cert, headers: { 'x-api-key': server.t.adminKey }, body: { query: ME } });
    expect(answer.status).toBe(200);
    expect(answer.body.data.me.id).toMatch(/^[0-9a-f-]{36}$/);
    expect(answer.peer.fingerprint256).toBe(fingerprint(first.cert));
    for (const [url, status] of [[`${server.t.url}/graphql`, 200], [`${server.t.url}/health`, 200], [`${server.t.url}/nowhere`, 404]] as const) {
      const res = await httpsRequest(url, { ca: first.cert, headers: { 'x-api-key': server.t.adminKey }, ...(url.endsWith('/graphql') ? { body: { query: ME } } : {}) });
      expect(res.status).toBe(status);
      expect(res.headers['strict-transport-security']).toBe('max-age=15552000');
    }
    // A refusal over HTTPS is the key gate's own 401, not HTTPS_REQUIRED, and carries HSTS too.
    const wrong = await httpsRequest(`${server.t.url}/graphql`, { ca: first.cert, headers: { 'x-api-key': generateKey('tg') }, body: { query: ME } });
    expect(wrong.status).toBe(401);
    expect(wrong.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    expect(wrong.headers['strict-transport-security']).toBe('max-age=15552000');
  });

  it('serves a renewed certificate to new connections after reloadTls() (SIGHUP), without a restart', async () => {
    copyFileSync(second.certFile, files.certFile);
    copyFileSync(second.keyFile, files.keyFile);
    expect(server.t.server.reloadTls()).toBe(true);
    const answer = await httpsRequest(`${server.t.url}/health`, { ca: second.cert });
    expect(answer.status).toBe(200);
    expect(answer.peer.fingerprint256).toBe(fingerprint(second.cert));
    // A broken pair (the key of the other certificate) is refused naming the variables; the
    // renewed certificate is still served.
    copyFileSync(first.keyFile, files.keyFile);
    expect(() => server.t.server.reloadTls()).toThrow(/TLS_CERT_FILE \/ TLS_KEY_FILE: .* are not a PEM certificate and its private key/);
    expect((await httpsRequest(`${server.t.url}/health`, { ca: second.cert })).peer.fingerprint256).toBe(fingerprint(second.cert));
  });
});

describe('TLS configuration stops the start with the variable named', () => {
  it('one file without the other', () => {
    expect(() => loadConfig({ TLS_CERT_FILE: first.certFile })).toThrow(/TLS_KEY_FILE: required with TLS_CERT_FILE/);
    expect(() => loadConfig({ TLS_KEY_FILE: first.keyFile })).toThrow(/TLS_CERT_FILE: required with TLS_KEY_FILE/);
  });

  it('a file that cannot be read', () => {
    expect(() => loadConfig({ TLS_CERT_FILE: path.join(dir, 'missing.pem'), TLS_KEY_FILE: first.keyFile })).toThrow(/TLS_CERT_FILE: cannot read ".*missing\.pem" \(ENOENT\)/);
    const locked = path.join(dir, 'locked-key.pem');
    copyFileSync(first.keyFile, locked);
    chmodSync(locked, 0o000);
    // root reads anything: only where the process is not root is "unreadable" possible.
    if (process.getuid?.() !== 0) expect(() => loadConfig({ TLS_CERT_FILE: first.certFile, TLS_KEY_FILE: locked })).toThrow(/TLS_KEY_FILE: cannot read/);
  });

  it('a key that is not the certificate\'s', async () => {
    const db: TestDatabase = await openTestDatabase('pglite');
    try {
      const config = testConfig({ TLS_CERT_FILE: first.certFile, TLS_KEY_FILE: second.keyFile });
      const attempt = createServer({ config, database: db });
      await expect(attempt).rejects.toThrow(ConfigError);
      await expect(attempt).rejects.toThrow(/TLS_CERT_FILE \/ TLS_KEY_FILE/);
    } finally {
      await db.dispose();
    }
  });
});

describe('REQUIRE_HTTPS on plain HTTP', () => {
  const server = useTestServer({ env: { REQUIRE_HTTPS: 'true', TRUST_PROXY: 'true', AUTH_FAILURE_LIMIT: '3', METRICS_TOKEN: 'a-metrics-token-of-32-characters' } });
  const post = (headers: Record<string, string>) =>
    fetch(`${server.t.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query: ME }) });

  it('refuses a key over plain HTTP with 403 HTTPS_REQUIRED — the same answer for a right and a wrong key, before any lookup', async () => {
    const queriesBefore = server.db.queries.length;
    const answers = [];
    const senders: Record<string, string>[] = [{ 'x-api-key': server.t.adminKey }, { 'x-api-key': generateKey('tg') }, { authorization: `Bearer ${generateKey('tg')}` }, { authorization: 'Basic dXNlcjpwYXNz' }];
    for (const headers of senders) {
      const res = await post(headers);
      answers.push({ status: res.status, hsts: res.headers.get('strict-transport-security'), body: await res.json() });
    }
    for (const answer of answers) expect(answer).toEqual(answers[0]);
    expect(answers[0].status).toBe(403);
    expect(answers[0].hsts).toBeNull(); // HSTS only over HTTPS (a browser ignores it over HTTP anyway)
    expect(answers[0].body).toEqual({ errors: [{ message: expect.stringMatching(/^API keys are accepted over HTTPS only/), extensions: { code: 'HTTPS_REQUIRED' } }] });
    // Nothing was looked up for a never-seen key.
    expect(server.db.queries.length).toBe(queriesBefore);
  });

  it('counts no failed authentication: more wrong keys than AUTH_FAILURE_LIMIT over HTTP do not block the address', async () => {
    for (let i = 0; i < 5; i++) expect((await post({ 'x-api-key': generateKey('tg') })).status).toBe(403);
    const metrics = await (await fetch(`${server.t.url}/metrics`, { headers: { authorization: 'Bearer a-metrics-token-of-32-characters' } })).text();
    expect(metrics).not.toMatch(/^tollgate_auth_failures_total\{reason="invalid"\} [1-9]/m);
    // Through the trusted proxy, which says the client spoke HTTPS: admitted, not blocked.
    const proxied = await post({ 'x-api-key': server.t.adminKey, 'x-forwarded-proto': 'https', 'x-forwarded-for': '203.0.113.7' });
    expect(proxied.status).toBe(200);
    expect(proxied.headers.get('strict-transport-security')).toBe('max-age=15552000');
  });

  it('a request without a key is the key gate\'s 401 as before; /health, /ready and /metrics stay reachable over HTTP', async () => {
    const keyless = await post({});
    expect(keyless.status).toBe(401);
    expect(((await keyless.json()) as any).errors[0].extensions.code).toBe('UNAUTHENTICATED');
    expect((await fetch(`${server.t.url}/health`, { headers: { 'x-api-key': server.t.adminKey } })).status).toBe(200);
    expect((await fetch(`${server.t.url}/ready`, { headers: { authorization: `Bearer ${server.t.adminKey}` } })).status).toBe(200);
    expect((await fetch(`${server.t.url}/metrics`, { headers: { authorization: 'Bearer a-metrics-token-of-32-characters' } })).status).toBe(200);
  });
});

describe('X-Forwarded-Proto counts only from a trusted proxy', () => {
  const server = useTestServer({ env: { REQUIRE_HTTPS: 'true' } });
  it('without TRUST_PROXY the client\'s own X-Forwarded-Proto: https changes nothing', async () => {
    const res = await server.t.gql(ME, {}, server.t.adminKey, { 'x-forwarded-proto': 'https' });
    expect(res.status).toBe(403);
    expect(res.body.errors[0].extensions.code).toBe('HTTPS_REQUIRED');
  });
});

describe('REQUIRE_HTTPS defaults', () => {
  it('on in production, off elsewhere; REQUIRE_HTTPS decides when set', () => {
    expect(loadConfig({ NODE_ENV: 'production' }).requireHttps).toBe(true);
    expect(loadConfig({ NODE_ENV: 'development' }).requireHttps).toBe(false);
    expect(loadConfig({ NODE_ENV: 'test' }).requireHttps).toBe(false);
    expect(loadConfig({ NODE_ENV: 'production', REQUIRE_HTTPS: 'false' }).requireHttps).toBe(false);
    expect(loadConfig({ REQUIRE_HTTPS: 'true' }).requireHttps).toBe(true);
  });
});

describe('CORS_ORIGINS', () => {
  const origin = 'https://app.example.com';
  const server = useTestServer({ env: { CORS_ORIGINS: `${origin}, https://admin.example.com` } });
  const preflight = (from: string) =>
    fetch(`${server.t.url}/graphql`, {
      method: 'OPTIONS',
      headers: { origin: from, 'access-control-request-method': 'POST', 'access-control-request-headers': 'x-api-key,content-type' },
    });

  it('answers a preflight from a listed origin, echoing it and allowing the key headers', async () => {
    const res = await preflight(origin);
    expect(res.status).toBe(204);
    expect(res.headers.get('access-control-allow-origin')).toBe(origin);
    expect(res.headers.get('access-control-allow-headers')?.split(',').map((h) => h.trim())).toEqual(expect.arrayContaining(['x-api-key', 'authorization', 'content-type']));
    expect(res.headers.get('access-control-allow-methods')).toMatch(/POST/);
    expect(res.headers.get('vary')).toMatch(/origin/i);
  });

  it('echoes a listed origin on the answer itself, so the browser hands it (and the rate-limit headers) to the page', async () => {
    const res = await server.t.gql(ME, {}, server.t.adminKey, { origin });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBe(origin);
    expect(res.headers.get('access-control-expose-headers')).toMatch(/ratelimit/i);
  });

  it('gives any other origin no Access-Control-Allow-Origin', async () => {
    const pre = await preflight('https://evil.example.net');
    expect(pre.headers.get('access-control-allow-origin')).toBeNull();
    const res = await server.t.gql(ME, {}, server.t.adminKey, { origin: 'https://evil.example.net' });
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });

  it('is off by default, and a value that is not an origin stops the start naming CORS_ORIGINS', () => {
    expect(loadConfig({}).corsOrigins).toEqual([]);
    expect(() => loadConfig({ CORS_ORIGINS: 'https://app.example.com/path' })).toThrow(/CORS_ORIGINS: "https:\/\/app\.example\.com\/path" is not an origin/);
  });
});

describe('CORS off (the default)', () => {
  const server = useTestServer();
  it('names no origin', async () => {
    const res = await server.t.gql(ME, {}, server.t.adminKey, { origin: 'https://app.example.com' });
    expect(res.status).toBe(200);
    expect(res.headers.get('access-control-allow-origin')).toBeNull();
  });
});

describe('/metrics in production', () => {
  describe('without METRICS_TOKEN or METRICS_PORT', () => {
    const server = useTestServer({ env: { NODE_ENV: 'production', REQUIRE_HTTPS: 'false' } });
    it('is not served (404), and the server says how to turn it on', async () => {
      const res = await fetch(`${server.t.url}/metrics`);
      expect(res.status).toBe(404);
      expect(((await res.json()) as any).errors[0].extensions.code).toBe('NOT_FOUND');
      expect(server.t.server.transport.metrics).toMatch(/^off \(production: set METRICS_TOKEN, or METRICS_PORT/);
    });
  });
  describe('with METRICS_TOKEN', () => {
    const server = useTestServer({ env: { NODE_ENV: 'production', REQUIRE_HTTPS: 'false', METRICS_TOKEN: 'a-metrics-token-of-32-characters' } });
    it('needs the token', async () => {
      expect((await fetch(`${server.t.url}/metrics`)).status).toBe(401);
      expect((await fetch(`${server.t.url}/metrics`, { headers: { authorization: 'Bearer a-metrics-token-of-32-characters' } })).status).toBe(200);
      expect(server.t.server.transport.metrics).toBe('on /metrics (bearer token)');
    });
  });
  it('is public outside production, as before', () => {
    expect(loadConfig({ NODE_ENV: 'development' }).metricsEnabled).toBe(true);
    expect(loadConfig({ NODE_ENV: 'production', METRICS_PORT: '9464' }).metricsEnabled).toBe(true);
    expect(loadConfig({ NODE_ENV: 'production' }).metricsEnabled).toBe(false);
  });
});

describe('REQUIRE_HTTPS in the library: tollgate.context on Apollo\'s standalone server', () => {
  let tollgate: Tollgate;
  let apollo: ApolloServer<any>;
  let url: string;
  let key: string;
  beforeAll(async () => {
    tollgate = await createTollgate({ config: testConfig({ DATA_DIR: 'memory://', LOG_LEVEL: 'silent', REQUIRE_HTTPS: 'true', TRUST_PROXY: 'true' }), printAdminKey: false });
    apollo = new ApolloServer({ schema: tollgate.schema({ typeDefs: 'type Query { hello: String }', resolvers: { Query: { hello: () => 'world' } } }), plugins: tollgate.plugins, ...tollgate.apolloOptions });
    ({ url } = await startStandaloneServer(apollo, { context: tollgate.context, listen: { port: 0, host: '127.0.0.1' } }));
    const created = await tollgate.services.keys.create({ name: 'library', scopes: ['read'] }, null);
    if (!created.ok) throw new Error(created.message);
    key = created.value.secret;
  });
  afterAll(async () => {
    await apollo?.stop();
    await tollgate?.close();
  });
  const post = (headers: Record<string, string>) =>
    fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query: '{ hello }' }) });

  it('refuses a key over plain HTTP with 403 HTTPS_REQUIRED, and admits it when the trusted proxy says HTTPS', async () => {
    for (const sent of [key, generateKey('tg')]) {
      const res = await post({ 'x-api-key': sent });
      expect(res.status).toBe(403);
      expect(((await res.json()) as any).errors[0].extensions.code).toBe('HTTPS_REQUIRED');
    }
    const proxied = await post({ 'x-api-key': key, 'x-forwarded-proto': 'https' });
    expect(proxied.status).toBe(200);
    expect(((await proxied.json()) as any).data).toEqual({ hello: 'world' });
  });

  it('httpsRefusal is the same rule for an Express middleware', () => {
    const socket = {};
    expect(httpsRefusal({ headers: { 'x-api-key': key }, socket }, tollgate.config)?.extensions.code).toBe('HTTPS_REQUIRED');
    expect(httpsRefusal({ headers: { 'x-api-key': key }, socket: { encrypted: true } }, tollgate.config)).toBeNull();
    expect(httpsRefusal({ headers: { 'x-api-key': key }, protocol: 'https', socket }, tollgate.config)).toBeNull(); // Express's req.protocol
    expect(httpsRefusal({ headers: {}, socket }, tollgate.config)).toBeNull(); // no key: the key gate's 401
  });
});
