import { flushTestRedis, openTestDatabase, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { storeBackends } from '../support/services';

// Every refusal tells the truth: what can never be admitted is not a 429 a client retries for
// ever, a refusal carries only numbers that are right, and a field refusal says what is left.

describe.each(storeBackends())('refusals that tell the truth on the %s store', (store) => {
  let db: TestDatabase;
  let t: TestServer;

  beforeAll(async () => {
    if (store === 'redis') await flushTestRedis();
    db = await openTestDatabase('pglite');
    t = await startTestServer({ database: db, store, env: { TRUST_PROXY: 'true', IP_LIMIT: '2' } });
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });

  it('an operation that costs more than the budget can ever hold is 400 QUERY_TOO_COMPLEX — not 429 — and costs nothing', async () => {
    const key = await t.createKey({ scopes: ['read'], budget: { points: 40, duration: 60 } });
    // stations 1 + 30 × (edge 1 + node 1) = 61 points, against 40 per window
    const res = await t.gql('{ stations(first: 30) { edges { node { id } } } }', {}, key.secret, { 'x-forwarded-for': '192.0.2.10' });
    expect(res.status).toBe(400);
    expect(res.headers.get('retry-after')).toBeNull();
    expect(res.body.errors[0].extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', cost: 61, limit: 40, duration: 60 });
    expect(res.body.errors[0].message).toMatch(/61 points.*40 points per 60-second window.*never/);
    const status = await t.gql('{ rateLimit { used remaining } }', {}, key.secret, { 'x-forwarded-for': '192.0.2.11' });
    expect(status.body.data.rateLimit).toEqual({ used: 0, remaining: 40 });
  });

  it('an IP refusal of a request with a valid key carries no budget numbers it does not know', async () => {
    const key = await t.createKey({ scopes: ['read'], budget: { points: 100, duration: 60 } });
    const from = { 'x-forwarded-for': '192.0.2.20' };
    for (let i = 0; i < 2; i++) expect((await t.gql('{ station(id: "LHR") { name } }', {}, key.secret, from)).status).toBe(200);
    const refused = await t.gql('{ station(id: "LHR") { name } }', {}, key.secret, from);
    expect(refused.status).toBe(429);
    expect(refused.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', gate: 'ip', limit: 2, remaining: 0 });
    // no "r=undefined", no empty throttleStatus: what is not known is absent
    expect(refused.headers.get('ratelimit') ?? '').not.toMatch(/undefined/);
    expect(JSON.stringify(refused.body)).not.toMatch(/undefined|"throttleStatus":\{\}/);
  });

  it('a field refusal says what is left in the window and what the call asked for', async () => {
    const key = await t.createKey({ scopes: ['read'], budget: { points: 1000, duration: 60 } });
    // forecast: 40 points a second; 6 days cost 12 — three calls leave 4, the fourth asks 12
    const from = (i: number) => ({ 'x-forwarded-for': `192.0.2.${30 + i}` });
    const query = '{ a: forecast(stationId: "LHR", days: 6) { date } b: forecast(stationId: "LHR", days: 6) { date } c: forecast(stationId: "LHR", days: 6) { date } d: forecast(stationId: "LHR", days: 6) { date } }';
    const res = await t.gql(query, {}, key.secret, from(0));
    expect(res.status).toBe(200);
    const refusal = res.body.errors.find((e: { path: string[] }) => e.path[0] === 'd');
    expect(refusal.extensions).toMatchObject({ code: 'RATE_LIMITED', coordinate: 'Query.forecast', limit: 40, duration: 1, remaining: 4, cost: 12 });
  });
});

describe('a field asked for more than its budget can ever hold', () => {
  let db: TestDatabase;
  let t: TestServer;
  beforeAll(async () => {
    db = await openTestDatabase('pglite');
    t = await startTestServer({ database: db });
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });

  it('forecast(days: 30) is BAD_USER_INPUT naming the argument that asked for it, and spends nothing', async () => {
    const key = await t.createKey({ scopes: ['read'] });
    const res = await t.gql('{ forecast(stationId: "LHR", days: 30) { date } }', {}, key.secret);
    expect(res.body.data.forecast).toBeNull();
    expect(res.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'days' });
    expect(res.body.errors[0].message).toBe('Query.forecast asks for 60 points with days: 30, but its budget is 40 points per window: check that argument against the field\'s documentation.');
    const usage = (await t.gql('{ me { usage { coordinate limit remaining } } }', {}, key.secret)).body.data.me.usage;
    expect(usage.filter((u: { coordinate: string }) => u.coordinate === 'Query.forecast').map((u: { remaining: number }) => u.remaining)).toEqual([40, 2000]);
  });
});
