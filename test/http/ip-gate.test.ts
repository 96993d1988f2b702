import type { IncomingMessage } from 'node:http';
import { generateKey } from '../../src/keys/format';
import { clientIp } from '../../src/tollgate';
import { flushTestRedis, openTestDatabase, requestQueries, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { storeBackends } from '../support/services';

const Q = '{ __typename }';

describe.each(storeBackends())('IP gate on the %s store', (store) => {
  let db: TestDatabase;
  let t: TestServer;
  let untrusting: TestServer;

  beforeAll(async () => {
    if (store === 'redis') await flushTestRedis();
    db = await openTestDatabase('pglite');
    const env = { IP_LIMIT: '8', IP_LIMIT_DURATION_SECONDS: '60', AUTH_FAILURE_LIMIT: '3', AUTH_FAILURE_WINDOW_SECONDS: '600', AUTH_FAILURE_BLOCK_SECONDS: '900', LAST_USED_FLUSH_SECONDS: '3600' };
    t = await startTestServer({ database: db, store, env: { ...env, TRUST_PROXY: 'true' } });
    untrusting = await startTestServer({ database: db, store, env: { ...env, IP_LIMIT: '1000', TRUST_PROXY: 'false' } });
  });
  afterAll(async () => {
    await t?.close();
    await untrusting?.close();
    await db?.dispose();
  });

  const from = (ip: string) => ({ 'x-forwarded-for': ip });

  it('admits 8 requests per IP per minute, then 429 with Retry-After', async () => {
    const ip = '203.0.113.10';
    const started = Date.now();
    for (let i = 1; i <= 8; i++) expect((await t.gql(Q, {}, undefined, from(ip))).status).toBe(200);
    const askedAt = Date.now();
    const refused = await t.gql(Q, {}, undefined, from(ip));
    const answeredAt = Date.now();
    expect(refused.status).toBe(429);
    // The window slides over minute buckets: the ninth fits once this minute has ended and an
    // eighth of its 8 requests has faded (7.5 s more). Retry-After says exactly that, counted at
    // some moment while the refusal was being made (a loaded machine widens the range, no more).
    const retryAfter = Number(refused.headers.get('retry-after'));
    expect(retryAfter).toBeLessThanOrEqual(68);
    if (Math.floor(started / 60_000) === Math.floor(answeredAt / 60_000)) {
      const expectedAt = (now: number) => Math.ceil((60_000 - (now % 60_000) + 7_500) / 1000);
      expect(retryAfter).toBeLessThanOrEqual(expectedAt(askedAt) + 1);
      expect(retryAfter).toBeGreaterThanOrEqual(expectedAt(answeredAt) - 1);
    }
    expect(refused.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', gate: 'ip', limit: 8, remaining: 0 });
    // another address is not affected
    expect((await t.gql(Q, {}, undefined, from('203.0.113.11'))).status).toBe(200);
  });

  it('blocks an IP after 3 failed authentications: every further guess is 429, and no key budget is spent', async () => {
    const ip = '203.0.113.20';
    for (let i = 0; i < 3; i++) expect((await t.gql(Q, {}, generateKey('tg'), from(ip))).status).toBe(401);
    const dbBefore = requestQueries(db).length;
    expect((await t.gql(Q, {}, 'tg_malformed', from(ip))).status).toBe(429);
    const blocked = await t.gql(Q, {}, generateKey('tg'), from(ip));
    expect(requestQueries(db).length).toBe(dbBefore); // the guess never reached the database
    // a key this address has never used here is not looked up either, and spends nothing
    const fresh = await t.createKey();
    const spending = '{ station(id: "LHR") { name } forecast(stationId: "LHR", days: 2) { highC } }';
    expect((await t.gql(spending, {}, fresh.secret, from(ip))).status).toBe(429);
    // a key this instance has already verified keeps working: the block stops guessing, not customers behind the same NAT
    expect((await t.gql(Q, {}, t.adminKey, from(ip))).status).toBe(200);
    expect(blocked.status).toBe(429);
    expect(blocked.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', gate: 'auth-failures' });
    const retryAfter = Number(blocked.headers.get('retry-after'));
    expect(retryAfter).toBeGreaterThan(890);
    expect(retryAfter).toBeLessThanOrEqual(900);
    // The refused request spent none of the fresh key's budgets: field windows and operation budget.
    const usage = await t.gql('query($id: ID!) { apiKey(id: $id) { usage { coordinate remaining limit } } }', { id: fresh.id }, undefined, from('203.0.113.21'));
    expect(usage.body.data.apiKey.usage.length).toBeGreaterThan(0);
    for (const u of usage.body.data.apiKey.usage) expect(u.remaining).toBe(u.limit);
    const budget = await t.gql('{ rateLimit { remaining limit } }', {}, fresh.secret, from('203.0.113.22'));
    expect(budget.body.data.rateLimit.remaining).toBe(budget.body.data.rateLimit.limit);
    // ...while the same request from a free address does spend (the check above can fail).
    expect((await t.gql(spending, {}, fresh.secret, from('203.0.113.23'))).status).toBe(200);
    const after = await t.gql('query($id: ID!) { apiKey(id: $id) { usage { coordinate remaining limit } } }', { id: fresh.id }, undefined, from('203.0.113.21'));
    expect(after.body.data.apiKey.usage.find((u: any) => u.coordinate === 'Query.station').remaining).toBe(299);
  });

  it('behind a proxy that appends to X-Forwarded-For (AWS ALB, nginx $proxy_add_x_forwarded_for), a forged first entry buys no fresh budget', async () => {
    // The client sends its own X-Forwarded-For, a new address each time; the proxy appends the real one.
    const forged = (i: number) => ({ 'x-forwarded-for': `10.0.${i}.1, 203.0.113.30` });
    for (let i = 1; i <= 8; i++) expect((await t.gql(Q, {}, undefined, forged(i))).status).toBe(200);
    const refused = await t.gql(Q, {}, undefined, forged(9));
    expect(refused.status).toBe(429);
    expect(refused.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', gate: 'ip' });
    // and failed authentications are counted against the real address too
    for (let i = 0; i < 3; i++) await t.gql(Q, {}, generateKey('tg'), { 'x-forwarded-for': `10.1.${i}.1, 203.0.113.31` });
    const guess = await t.gql(Q, {}, generateKey('tg'), { 'x-forwarded-for': '10.1.99.1, 203.0.113.31' });
    expect(guess.status).toBe(429);
    expect(guess.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', gate: 'auth-failures' });
  });

  it('ignores X-Forwarded-For unless TRUST_PROXY is set', async () => {
    for (let i = 0; i < 3; i++) await untrusting.gql(Q, {}, generateKey('tg'), from(`198.51.100.${i}`));
    // three failures from "different" forwarded addresses were one real address: now blocked
    const res = await untrusting.gql(Q, {}, generateKey('tg'), from('198.51.100.99'));
    expect(res.status).toBe(429);
  });
});

// The library's own reading (Apollo standalone, no req.ip): the same rule as the bundled server's.
describe('clientIp: the address the outermost of TRUST_PROXY proxies saw', () => {
  const req = (xff?: string, ip?: string) => ({ headers: xff ? { 'x-forwarded-for': xff } : {}, socket: { remoteAddress: '10.9.9.9' }, ...(ip ? { ip } : {}) }) as unknown as IncomingMessage;
  it.each([
    [0, '203.0.113.1, 198.51.100.2', '10.9.9.9'], // no proxy trusted: the socket's peer, whatever the header says
    [1, '203.0.113.1, 198.51.100.2', '198.51.100.2'], // one proxy: the entry it appended, not the client's own
    [2, '203.0.113.1, 198.51.100.2', '203.0.113.1'],
    [3, '203.0.113.1, 198.51.100.2', '203.0.113.1'], // fewer entries than proxies: the furthest one
    [1, undefined, '10.9.9.9'],
  ] as const)('%i trusted proxies, X-Forwarded-For %s → %s', (hops, xff, expected) => {
    expect(clientIp(req(xff), hops)).toBe(expected);
  });
  it('takes req.ip when the framework set it (Express, Fastify)', () => {
    expect(clientIp(req('203.0.113.1', '192.0.2.7'), 1)).toBe('192.0.2.7');
  });
});
