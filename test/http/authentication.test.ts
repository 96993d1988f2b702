import http from 'node:http';
import { eq, sql } from 'drizzle-orm';
import { apiKeys } from '../../src/db/schema';
import { generateKey } from '../../src/keys/format';
import { openTestDatabase, requestQueries, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { databaseBackends } from '../support/services';

const ME = '{ me { id name } }';

/** Raw HTTP for what fetch refuses to send (non-ASCII and oversized headers, broken bodies). */
function raw(url: string, options: { method?: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}/graphql`, { method: options.method ?? 'POST', headers: options.headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

describe.each(databaseBackends())('authentication on %s', (backend) => {
  let db: TestDatabase;
  let t: TestServer;
  let skew = 0; // how far the server's clock runs ahead, so expiry needs no sleeping

  beforeAll(async () => {
    db = await openTestDatabase(backend);
    t = await startTestServer({ database: db, env: { LAST_USED_FLUSH_SECONDS: '3600' }, now: () => Date.now() + skew });
  });
  afterEach(() => {
    skew = 0;
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });

  it('answers a valid key with data', async () => {
    const res = await t.gql(ME);
    expect(res.status).toBe(200);
    expect(res.body.data.me.name).toBeDefined();
  });

  it('refuses a missing key with 401 and says the header is missing', async () => {
    const res = await t.gql(ME, {}, null);
    expect(res.status).toBe(401);
    expect(res.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    expect(res.body.errors[0].message).toMatch(/x-api-key/);
    expect(res.body.errors[0].extensions.http).toBeUndefined();
  });

  it('refuses malformed and bad-checksum keys without any database query', async () => {
    const before = requestQueries(db).length;
    const good = generateKey('tg');
    for (const key of ['nonsense', good.slice(0, -1) + (good.endsWith('a') ? 'b' : 'a'), 'x'.repeat(2000)]) {
      const res = await t.gql(ME, {}, key);
      expect(res.status).toBe(401);
      expect(res.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    }
    expect(requestQueries(db).length).toBe(before);
  });

  it('gives unknown, revoked and expired keys one public message', async () => {
    const unknown = await t.gql(ME, {}, generateKey('tg'));
    const revoked = await t.createKey();
    await t.server.keys.revoke(revoked.id, null);
    const revokedRes = await t.gql(ME, {}, revoked.secret);
    const expiring = await t.createKey();
    await db.db.update(apiKeys).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(apiKeys.id, expiring.id));
    t.server.authenticator.invalidate(expiring.id);
    const expiredRes = await t.gql(ME, {}, expiring.secret);
    for (const res of [unknown, revokedRes, expiredRes]) {
      expect(res.status).toBe(401);
      expect(res.body.errors[0]).toEqual({ message: 'The API key is not valid.', extensions: { code: 'UNAUTHENTICATED' } });
    }
  });

  it('refuses a cached key as soon as it expires', async () => {
    const key = await t.createKey();
    await db.db.update(apiKeys).set({ expiresAt: new Date(Date.now() + 60_000) }).where(eq(apiKeys.id, key.id));
    t.server.authenticator.invalidate(key.id);
    expect((await t.gql(ME, {}, key.secret)).status).toBe(200); // now cached
    skew = 61_000;
    expect((await t.gql(ME, {}, key.secret)).status).toBe(401);
  });

  it('accepts Authorization: Bearer, and refuses two different keys with 400', async () => {
    expect((await t.gql(ME, {}, null, { authorization: `Bearer ${t.adminKey}` })).status).toBe(200);
    expect((await t.gql(ME, {}, t.adminKey, { authorization: `Bearer ${t.adminKey}` })).status).toBe(200);
    const other = await t.createKey();
    const both = await t.gql(ME, {}, t.adminKey, { authorization: `Bearer ${other.secret}` });
    expect(both.status).toBe(400);
    expect(both.body.errors[0].extensions.code).toBe('BAD_REQUEST');
    const basic = await t.gql(ME, {}, null, { authorization: 'Basic abc' });
    expect(basic.status).toBe(401);
  });

  it('makes zero database queries for a warm key', async () => {
    const key = await t.createKey({ scopes: ['read'] });
    expect((await t.gql('{ __typename }', {}, key.secret)).status).toBe(200); // cold: one lookup
    const before = requestQueries(db).length;
    for (let i = 0; i < 10; i++) expect((await t.gql('{ __typename }', {}, key.secret)).status).toBe(200);
    expect(requestQueries(db).length - before).toBe(0);
  });

  it('writes last_used_at in one batched UPDATE, not per request', async () => {
    const a = await t.createKey();
    const b = await t.createKey();
    const before = db.queries.length;
    for (let i = 0; i < 5; i++) {
      await t.gql('{ __typename }', {}, a.secret);
      await t.gql('{ __typename }', {}, b.secret);
    }
    const updatesDuringRequests = db.queries.slice(before).filter((q) => /^update "tollgate"."api_keys"/i.test(q));
    expect(updatesDuringRequests).toHaveLength(0);
    await t.server.authenticator.flushLastUsed();
    const updates = db.queries.slice(before).filter((q) => /^update "tollgate"."api_keys"/i.test(q));
    expect(updates).toHaveLength(1);
    const rows = await db.db.select().from(apiKeys).where(sql`${apiKeys.id} in (${a.id}, ${b.id})`);
    expect(rows.every((r) => r.lastUsedAt instanceof Date)).toBe(true);
  });

  it('flushes last_used_at when the server shuts down', async () => {
    const other = await startTestServer({ database: db, env: { LAST_USED_FLUSH_SECONDS: '3600' } });
    const key = await other.createKey();
    await other.gql(ME, {}, key.secret);
    const before = await db.db.select().from(apiKeys).where(eq(apiKeys.id, key.id));
    expect(before[0].lastUsedAt).toBeNull();
    await other.close();
    const after = await db.db.select().from(apiKeys).where(eq(apiKeys.id, key.id));
    expect(after[0].lastUsedAt).toBeInstanceOf(Date);
  });

  it('never stores or logs a secret', async () => {
    const created = await t.gql('mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id start } } }', {
      input: { name: 'leak check', scopes: ['read'] },
    });
    const secret: string = created.body.data.createApiKey.secret;
    await t.gql(ME, {}, secret);
    await t.gql(ME, {}, secret, { authorization: `Bearer ${secret}` });
    await t.server.authenticator.flushLastUsed();
    const secrets = [secret, t.adminKey];
    for (const table of ['api_keys', 'audit_events']) {
      const rows = await db.db.execute(sql.raw(`select * from tollgate.${table}`));
      const text = JSON.stringify(rows);
      for (const s of secrets) {
        expect(text).not.toContain(s);
        expect(text).not.toContain(s.slice(7)); // not even the secret part without its start
      }
    }
    expect(t.logs.length).toBeGreaterThan(0);
    for (const line of t.logs) for (const s of secrets) expect(line).not.toContain(s);
  });

  it('logs one structured line per request with the key id, never the key', async () => {
    const key = await t.createKey();
    await t.gql('query Probe { __typename }', {}, key.secret);
    const line = t.logs.map((l) => JSON.parse(l)).find((l) => l.keyId === key.id && l.operationName === 'Probe');
    expect(line).toMatchObject({ msg: 'request', status: 200, path: '/graphql', operationType: 'query' });
    expect(typeof line.durationMs).toBe('number');
  });

  describe('bad input never crashes the server or returns 500', () => {
    it.each([
      ['invalid JSON', { headers: { 'content-type': 'application/json', 'x-api-key': 'K' }, body: '{"query": ' }, 400, 'BAD_REQUEST'],
      ['a missing query', { headers: { 'content-type': 'application/json', 'x-api-key': 'K' }, body: '{}' }, 400, 'BAD_REQUEST'],
      ['a text/plain body', { headers: { 'content-type': 'text/plain', 'x-api-key': 'K' }, body: '{ __typename }' }, 400, 'BAD_REQUEST'],
      ['an unsupported content type', { headers: { 'content-type': 'application/xml', 'x-api-key': 'K' }, body: '<q/>' }, 415, 'BAD_REQUEST'],
      ['a non-ASCII key', { headers: { 'content-type': 'application/json', 'x-api-key': 'tg_\u00e9\u00e9\u00e9' }, body: '{"query":"{ __typename }"}' }, 401, 'UNAUTHENTICATED'],
      ['an empty key', { headers: { 'content-type': 'application/json', 'x-api-key': '' }, body: '{"query":"{ __typename }"}' }, 401, 'UNAUTHENTICATED'],
      ['a 64 KB header', { headers: { 'content-type': 'application/json', 'x-api-key': 'a'.repeat(65_536) }, body: '{"query":"{ __typename }"}' }, 431, 'BAD_REQUEST'],
      ['a 2 MB body', { headers: { 'content-type': 'application/json', 'x-api-key': 'K' }, body: JSON.stringify({ query: `{ __typename }${' '.repeat(2_000_000)}` }) }, 413, 'BAD_REQUEST'],
    ])('%s gets a clear %i %s', async (_name, request, status, code) => {
      const headers = Object.fromEntries(Object.entries(request.headers).map(([k, v]) => [k, v === 'K' ? t.adminKey : v]));
      const res = await raw(t.url, { headers, body: request.body });
      expect(res.status).toBe(status);
      expect(JSON.parse(res.body).errors[0].extensions.code).toBe(code);
      expect((await t.gql(ME)).status).toBe(200); // still alive
    });
  });

  it('answers /health and /ready', async () => {
    expect(await (await fetch(`${t.url}/health`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${t.url}/ready`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({ status: 'ready', database: 'up' });
  });
});
