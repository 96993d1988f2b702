import { createHash } from 'node:crypto';
import { ApolloServer } from '@apollo/server';
import { parseRateLimit } from 'ratelimit-header-parser';
import { createTollgate, type Tollgate } from '../../src/index';
import { testConfig, withTestServer, type TestServer } from '../support/harness';

// RATELIMIT_HEADERS (issue 27): every form a client library reads, with the same numbers the
// rateLimit query gives. draft-6, draft-7 and github are read with express-rate-limit's own
// parser (ratelimit-header-parser), as a client would read them.
const STATION = '{ station(id: "LHR") { name } }'; // 1 point
const STATUS = '{ rateLimit { limit remaining used resetAt } }'; // reads, spends nothing

/** Spends 3 of a 50-point minute, then reads the budget: the status response's headers and body. */
async function spendThenRead(t: TestServer) {
  const key = await t.createKey({ scopes: ['read'], budget: { points: 50, duration: 60 } });
  for (let i = 0; i < 3; i++) expect((await t.gql(STATION, {}, key.secret)).status).toBe(200);
  const res = await t.gql(STATUS, {}, key.secret);
  expect(res.status).toBe(200);
  const status = res.body.data.rateLimit as { limit: number; remaining: number; used: number; resetAt: string };
  expect(status).toMatchObject({ limit: 50, remaining: 47, used: 3 });
  return { key, res, status };
}

describe.each(['draft-6', 'draft-7', 'github'] as const)('RATELIMIT_HEADERS=%s', (mode) => {
  it('ratelimit-header-parser reads the rateLimit query\'s numbers: limit 50, 47 remaining, 3 used, the same reset', async () => {
    await withTestServer({ env: { RATELIMIT_HEADERS: mode } }, async (t) => {
      const before = Date.now();
      const { res, status } = await spendThenRead(t);
      const parsed = parseRateLimit(res.headers);
      const parsedAt = Date.now();
      expect(parsed).toMatchObject({ limit: status.limit, remaining: status.remaining, used: status.used });
      // Whole seconds on the wire (a second either way), counted by the server and read back by
      // the parser at two moments between \`before\` and \`parsedAt\`: off resetAt by no more.
      const off = parsed!.reset!.getTime() - Date.parse(status.resetAt);
      expect(off).toBeGreaterThan(-1000);
      expect(off).toBeLessThan(parsedAt - before + 1000);
      // Only the chosen form is sent.
      const names = [...res.headers.keys()].filter((n) => n.includes('ratelimit'));
      const expected = {
        'draft-6': ['ratelimit-limit', 'ratelimit-remaining', 'ratelimit-reset'],
        'draft-7': ['ratelimit', 'ratelimit-policy'],
        github: ['x-ratelimit-limit', 'x-ratelimit-remaining', 'x-ratelimit-reset', 'x-ratelimit-resource', 'x-ratelimit-used'],
      }[mode];
      expect(names.sort()).toEqual(expected);
      if (mode === 'draft-7') {
        expect(res.headers.get('ratelimit')).toMatch(/^limit=50, remaining=47, reset=\d+$/);
        expect(res.headers.get('ratelimit-policy')).toBe('50;w=60');
      }
      if (mode === 'github') {
        expect(res.headers.get('x-ratelimit-resource')).toBe('budget');
        expect(Number(res.headers.get('x-ratelimit-reset'))).toBe(Math.ceil(Date.parse(status.resetAt) / 1000));
      }
    });
  });

  it('a refusal carries the same form: remaining 0, and Retry-After beside it', async () => {
    await withTestServer({ env: { RATELIMIT_HEADERS: mode } }, async (t) => {
      const key = await t.createKey({ scopes: ['read'], budget: { points: 2, duration: 60 } });
      for (let i = 0; i < 2; i++) expect((await t.gql(STATION, {}, key.secret)).status).toBe(200);
      const refused = await t.gql(STATION, {}, key.secret);
      expect(refused.status).toBe(429);
      expect(Number(refused.headers.get('retry-after'))).toBeGreaterThan(0);
      expect(parseRateLimit(refused.headers)).toMatchObject({ limit: 2, remaining: 0, used: 2 });
    });
  });
});

describe('RATELIMIT_HEADERS=draft-8 (the default)', () => {
  it('follows draft-ietf-httpapi-ratelimit-headers: named windows, each with a partition key derived from the key id, never the key', async () => {
    await withTestServer({}, async (t) => {
      const { key, res } = await spendThenRead(t);
      const other = await spendThenRead(t);
      const pk = createHash('sha256').update(`tollgate-partition:${key.id}`).digest().subarray(0, 12).toString('base64');
      expect(res.headers.get('ratelimit-policy')).toBe(`"budget";q=50;w=60;pk=:${pk}:`);
      expect(res.headers.get('ratelimit')).toMatch(new RegExp(`^"budget";r=47;t=\\d+;pk=:${pk.replace(/[+/]/g, '\\$&')}:$`));
      // Another key, another partition; neither header carries the secret or the id.
      expect(other.res.headers.get('ratelimit')).not.toContain(pk);
      for (const header of [res.headers.get('ratelimit')!, res.headers.get('ratelimit-policy')!]) {
        expect(header).not.toContain(key.secret);
        expect(header).not.toContain(key.id);
      }
      expect(res.headers.get('ratelimit-limit')).toBeNull();
    });
  });
});

describe('RATELIMIT_HEADERS=off', () => {
  it('sends no RateLimit header; extensions.cost still tells', async () => {
    await withTestServer({ env: { RATELIMIT_HEADERS: 'off' } }, async (t) => {
      const { res } = await spendThenRead(t);
      expect([...res.headers.keys()].filter((n) => n.includes('ratelimit'))).toEqual([]);
      expect(res.body.extensions.cost.throttleStatus).toMatchObject({ maximumAvailable: 50, currentlyAvailable: 47 });
    });
  });
});

describe('a library user chooses the form on createTollgate', () => {
  let tollgate: Tollgate;
  let server: ApolloServer<any>;
  beforeAll(async () => {
    tollgate = await createTollgate({ config: testConfig({ DATA_DIR: 'memory://', LOG_LEVEL: 'silent' }), printAdminKey: false, rateLimitHeaders: 'github' });
    server = new ApolloServer({ schema: tollgate.schema({ typeDefs: 'type Query { hello: String @cost(weight: 2) }', resolvers: { Query: { hello: () => 'hi' } } }), plugins: tollgate.plugins });
    await server.start();
  }, 30_000);
  afterAll(async () => {
    await server?.stop();
    await tollgate?.close();
  });

  it('rateLimitHeaders: github gives x-ratelimit-* on its own Apollo server', async () => {
    const created = await tollgate.services.keys.create({ name: 'owner', scopes: ['read'], budget: { points: 10, duration: 60 } }, null);
    if (!created.ok) throw new Error(created.message);
    const contextValue = await tollgate.contextFor({ requestId: 'r1', ip: '127.0.0.1', headers: { 'x-api-key': created.value.secret } });
    const res = await server.executeOperation({ query: '{ hello }' }, { contextValue });
    const headers = Object.fromEntries(res.http.headers);
    expect(parseRateLimit(headers)).toMatchObject({ limit: 10, remaining: 8, used: 2 });
    expect(headers['ratelimit-policy']).toBeUndefined();
  });
});
