import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { loadConfig } from '../../src/config';
import { apiKeys, auditEvents } from '../../src/db/schema';
import { generateKey } from '../../src/keys/format';
import { createServer } from '../../src/app/server';
import { openTestDatabase, startTestServer, testConfig, useTestServer, type TestDatabase } from '../support/harness';
import { createScratchDatabase, describeIf, hasPostgres } from '../support/services';

// Promises the README makes that no other suite checks, each over HTTP.
const ME = '{ me { id name scopes } }';

describe('README promises', () => {
  const s = useTestServer();

  it('a scope refusal beside a field that succeeds is a field error with status 200', async () => {
    const reader = await s.t.createKey({ scopes: ['read'] });
    const res = await s.t.gql('mutation { recordObservation(input: { stationId: "OSL", temperatureC: 1, humidity: 50, windKph: 3 }) { id } }', {}, reader.secret);
    expect(res.status).toBe(403); // alone, it refuses the whole operation
    const mixed = await s.t.gql('query($id: ID!) { station(id: "LHR") { name } apiKey(id: $id) { name } }', { id: reader.id }, reader.secret);
    expect(mixed.status).toBe(200);
    expect(mixed.body.data.station.name).toBeTruthy();
    expect(mixed.body.data.apiKey).toBeNull();
    expect(mixed.body.errors).toMatchObject([{ path: ['apiKey'], extensions: { code: 'FORBIDDEN', requiredScopes: ['admin'] } }]);
  });

  it('auditEvents(keyId) lists only that key\'s events', async () => {
    const a = await s.t.createKey({ name: 'audited a' });
    const b = await s.t.createKey({ name: 'audited b' });
    await s.t.gql('mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: a.id });
    const res = await s.t.gql('query($k: ID) { auditEvents(first: 50, keyId: $k) { totalCount edges { node { action targetKeyId } } } }', { k: a.id });
    const events = res.body.data.auditEvents.edges.map((e: any) => e.node);
    expect(events.map((e: any) => e.action).sort()).toEqual(['key.created', 'key.revoked']);
    expect(events.every((e: any) => e.targetKeyId === a.id)).toBe(true);
    const other = await s.t.gql('query($k: ID) { auditEvents(first: 50, keyId: $k) { edges { node { action } } } }', { k: b.id });
    expect(other.body.data.auditEvents.edges.map((e: any) => e.node.action)).toEqual(['key.created']);
  });

  it('an audit row is written in the same transaction as its change: a failed audit write leaves the key unchanged', async () => {
    const key = await s.t.createKey({ name: 'before' });
    const db = s.db.db;
    await db.execute(sql.raw(`create or replace function refuse_audit() returns trigger language plpgsql as $$ begin raise exception 'audit refused'; end $$`));
    await db.execute(sql.raw(`create trigger refuse_audit before insert on tollgate.audit_events for each row when (new.target_key_id = '${key.id}') execute function refuse_audit()`));
    try {
      const res = await s.t.gql('mutation($id: ID!) { updateApiKey(id: $id, input: { name: "after" }) { name } }', { id: key.id });
      expect(res.body.errors[0].extensions.code).toBe('INTERNAL_SERVER_ERROR');
      const [row] = await db.select().from(apiKeys).where(sql`${apiKeys.id} = ${key.id}`);
      expect(row.name).toBe('before'); // the update rolled back with the audit insert
    } finally {
      await db.execute(sql.raw('drop trigger refuse_audit on tollgate.audit_events'));
    }
  });

  it('audit rows never hold a secret or a hash', async () => {
    const key = await s.t.createKey({ name: 'hash check' });
    await s.t.gql('mutation($id: ID!) { rotateApiKey(id: $id, gracePeriodSeconds: 60) { secret } }', { id: key.id });
    const hashes = (await s.db.db.select({ h: apiKeys.hash, p: apiKeys.previousHash }).from(apiKeys)).flatMap((r) => [r.h, r.p]).filter(Boolean) as string[];
    const audit = JSON.stringify(await s.db.db.select().from(auditEvents));
    expect(hashes.length).toBeGreaterThan(2);
    for (const hash of hashes) expect(audit).not.toContain(hash);
    expect(audit).not.toContain(key.secret.slice(7));
  });

  it('extensions.cost.throttleStatus.resetAt is when the budget window\'s current bucket ends (on the minute), and agrees with the RateLimit header', async () => {
    const key = await s.t.createKey({ budget: { points: 100, duration: 60 } });
    const before = Date.now();
    const res = await s.t.gql('{ station(id: "LHR") { name } }', {}, key.secret);
    const after = Date.now();
    const resetAt = Date.parse(res.body.extensions.cost.throttleStatus.resetAt);
    expect(resetAt).toBeGreaterThan(before);
    expect(resetAt).toBeLessThanOrEqual(after + 60_000);
    // buckets are aligned to the epoch: a 60-second window's end on the minute, as the store saw it
    // during the request (so off the minute by at most the time the request took, never more)
    const offMinute = resetAt % 60_000;
    expect(Math.min(offMinute, 60_000 - offMinute)).toBeLessThanOrEqual(after - before + 2);
    // t is the whole seconds to resetAt, rounded up, counted at some moment between before and after.
    const t = Number(/t=(\d+)/.exec(res.headers.get('ratelimit')!)![1]);
    expect(before + t * 1000 - resetAt).toBeGreaterThanOrEqual(before - after);
    expect(before + t * 1000 - resetAt).toBeLessThan(1_000);
  });

});

describe('README promises: metrics', () => {
  it('tollgate_db_queries_total counts the statements sent: a cold key lookup adds one, a warm one none', async () => {
    // A server that opens its own database, as `npm start` does (the metric is wired there).
    // Its timed writers (last_used_at, usage history) send statements too, but not within this
    // test: their first tick is past jest's 30 s test timeout.
    const server = await createServer({ config: testConfig({ DATA_DIR: 'memory://', LOG_LEVEL: 'silent', LAST_USED_FLUSH_SECONDS: '3600', USAGE_FLUSH_SECONDS: '60' }) });
    try {
      const url = await server.listen();
      const created = await server.keys.create({ name: 'metered', scopes: ['read'] }, null);
      if (!created.ok) throw new Error(created.message);
      const call = () => fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': created.value.secret }, body: '{"query":"{ rateLimit { limit } }"}' });
      const count = async () => Number(/^tollgate_db_queries_total (\d+)/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1] ?? NaN);
      const before = await count();
      expect((await call()).status).toBe(200);
      expect((await count()) - before).toBe(1);
      const warm = await count();
      expect((await call()).status).toBe(200);
      expect((await count()) - warm).toBe(0);
    } finally {
      await server.close();
    }
  });
});

describe('README promises: configuration', () => {
  it('KEY_NEGATIVE_CACHE_TTL_SECONDS: an unknown key is looked up once, then again only after the TTL', async () => {
    let skew = 0;
    const db = await openTestDatabase('pglite');
    const t = await startTestServer({ database: db, env: { KEY_NEGATIVE_CACHE_TTL_SECONDS: '5' }, now: () => Date.now() + skew });
    try {
      const unknown = generateKey('tg');
      const lookups = () => db.queries.filter((q) => /from "tollgate"."api_keys"/.test(q) && /"hash" = /.test(q)).length;
      const before = lookups();
      for (let i = 0; i < 5; i++) expect((await t.gql(ME, {}, unknown)).status).toBe(401);
      expect(lookups() - before).toBe(1);
      skew = 6_000;
      expect((await t.gql(ME, {}, unknown)).status).toBe(401);
      expect(lookups() - before).toBe(2);
    } finally {
      await t.close();
      await db.dispose();
    }
  });

  it('KEY_PREFIX and SCOPES: keys carry the prefix, others are refused; only configured scopes are granted', async () => {
    const db = await openTestDatabase('pglite');
    const t = await startTestServer({ database: db, env: { KEY_PREFIX: 'acme', SCOPES: 'admin,read,write,billing' } });
    try {
      expect(t.adminKey).toMatch(/^acme_[0-9A-Za-z]{38}$/);
      const created = await t.gql('mutation { createApiKey(input: { name: "b", scopes: ["billing"] }) { secret apiKey { scopes start } } }');
      expect(created.body.data.createApiKey.secret).toMatch(/^acme_/);
      expect(created.body.data.createApiKey.apiKey.scopes).toEqual(['billing']);
      const refused = await t.gql('mutation { createApiKey(input: { name: "c", scopes: ["root"] }) { secret } }');
      expect(refused.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'scopes' });
      expect((await t.gql(ME, {}, generateKey('tg'))).status).toBe(401);
    } finally {
      await t.close();
      await db.dispose();
    }
  });

  it('HOST: listens on the address given, and only there', async () => {
    const config = testConfig({ HOST: '127.0.0.2' });
    const db = await openTestDatabase('pglite');
    const server = await createServer({ config, database: db });
    try {
      const url = await server.listen();
      expect(url).toMatch(/^http:\/\/127\.0\.0\.2:\d+$/);
      expect((await fetch(`${url}/health`)).status).toBe(200);
      await expect(fetch(url.replace('127.0.0.2', '127.0.0.1') + '/health')).rejects.toThrow();
    } finally {
      await server.close();
      await db.dispose();
    }
  });

  it.each([
    ['development', 'text/html'],
    ['production', 'application/json'],
  ])('the landing page in %s: a browser asking for HTML gets %s', async (env, type) => {
    const db = await openTestDatabase('pglite');
    const t = await startTestServer({ database: db, env: { NODE_ENV: env } });
    try {
      const res = await fetch(`${t.url}/graphql`, { headers: { accept: 'text/html' } });
      expect(res.headers.get('content-type')).toContain(type);
      if (env === 'production') expect(res.status).toBeGreaterThanOrEqual(400);
    } finally {
      await t.close();
      await db.dispose();
    }
  });

  it('a per-key override changed on one instance applies on another within KEY_CACHE_TTL_SECONDS, without a restart', async () => {
    const db = await openTestDatabase('pglite');
    // B's clock is injected: the TTL passes when the test says so, not after a sleep.
    let skew = 0;
    const a = await startTestServer({ database: db });
    const b = await startTestServer({ database: db, env: { KEY_CACHE_TTL_SECONDS: '1' }, now: () => Date.now() + skew });
    try {
      const key = await a.createKey({ limits: [{ coordinate: 'Query.station', limit: 100, duration: 60 }] });
      const twice = async () => [(await b.gql('{ station(id: "LHR") { id } }', {}, key.secret)).body, (await b.gql('{ station(id: "LHR") { id } }', {}, key.secret)).body];
      expect((await twice()).every((body) => !body.errors)).toBe(true); // B has the key (limit 100) cached
      const changed = await a.gql('mutation($id: ID!) { updateApiKey(id: $id, input: { limits: [{ coordinate: "Query.station", limit: 1, duration: 60 }] }) { id } }', { id: key.id });
      expect(changed.body.errors).toBeUndefined();
      skew = 1_001; // just past B's 1 s TTL
      const [, second] = await twice();
      expect(second.errors?.[0]?.extensions?.code).toBe('RATE_LIMITED');
    } finally {
      await a.close();
      await b.close();
      await db.dispose();
    }
  });
});

describeIf(hasPostgres(), `Postgres (${process.env.TEST_DATABASE_URL})`, 'README promises: DATABASE_POOL_SIZE', () => {
  it('never opens more connections than DATABASE_POOL_SIZE, however many requests arrive', async () => {
    const scratch = await createScratchDatabase();
    const watcher = postgres(scratch.url.replace(/\/[^/]+$/, '/postgres'), { max: 1 });
    const name = new URL(scratch.url).pathname.slice(1);
    const server = await createServer({ config: loadConfig({ ...Object.fromEntries(Object.entries(testConfigEnv())), DATABASE_URL: scratch.url, DATABASE_POOL_SIZE: '2' }) });
    try {
      const url = await server.listen();
      const keys = await Promise.all(Array.from({ length: 20 }, (_, i) => server.keys.create({ name: `k${i}`, scopes: ['read'] }, null)));
      let most = 0;
      const sample = setInterval(() => {
        void watcher`select count(*)::int as n from pg_stat_activity where datname = ${name}`.then(([r]) => (most = Math.max(most, r.n)), () => undefined);
      }, 5);
      const statuses = await Promise.all(
        keys.map((k) => fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': k.ok ? k.value.secret : '' }, body: JSON.stringify({ query: '{ stations(first: 20) { edges { node { id } } } }' }) }).then((r) => r.status)),
      );
      clearInterval(sample);
      expect(statuses).toEqual(Array(20).fill(200));
      expect(most).toBeGreaterThan(0);
      expect(most).toBeLessThanOrEqual(2);
    } finally {
      await server.close();
      await watcher.end();
      await scratch.drop();
    }
  });
});

/** The test environment (generous IP limits, quiet logs) as variables, for configs built by hand. */
function testConfigEnv(): Record<string, string> {
  return { NODE_ENV: 'test', PORT: '0', LOG_LEVEL: 'silent', IP_LIMIT: '1000000', AUTH_FAILURE_LIMIT: '1000000', LIMITER_TIMEOUT_MS: '2000' };
}
