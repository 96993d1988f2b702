import { sql } from 'drizzle-orm';
import { observations } from '../../src/weather/tables';
import { flushTestRedis, openTestDatabase, startTestServer, useTestServer, withTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { keyTag } from '../../src/gates/field-gate';
import { storeBackends } from '../support/services';
import { counterState } from '../support/counters';
import { until } from '../support/wait';

const STATION = '{ station(id: "LHR") { name } }'; // cost 1: one object field
const RECORD = 'mutation($input: RecordObservationInput!) { recordObservation(input: $input) { id } }'; // cost 10
const reading = { stationId: 'OSL', temperatureC: 1, humidity: 50, windKph: 3 };

describe.each(storeBackends())('operation gate on the %s store', (store) => {
  let db: TestDatabase;
  let t: TestServer;

  beforeAll(async () => {
    if (store === 'redis') await flushTestRedis();
    db = await openTestDatabase('pglite');
    t = await startTestServer({ database: db, store, env: { MAX_QUERY_COST: '1000' } });
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });

  const keyWithBudget = (points: number, scopes = ['read', 'write']) => t.createKey({ scopes, budget: { points, duration: 60 } });

  it('the default budget has a burst window beside the hour: a key cannot spend its hour in a minute', async () => {
    // No budget of its own: 10 000 an hour, 2 000 a minute (and room in Query.stations' own field window).
    const key = await t.createKey({ scopes: ['read'], limits: [{ coordinate: 'Query.stations', limit: 100_000, duration: 60 }] });
    // start early in a minute's bucket, so the minute's points do not begin to fade mid-test
    await until(async () => Date.now() % 60_000 < 40_000, 25_000);
    const STATIONS = '{ stations(first: 50) { edges { node { id } } } }'; // priced 101, 73 once measured (36 stations)
    let admitted = 0;
    let refused: Awaited<ReturnType<typeof t.gql>> | undefined;
    while (!refused && admitted < 40) {
      const res = await t.gql(STATIONS, {}, key.secret);
      if (res.status === 200) admitted++;
      else refused = res;
    }
    // 27 × 73 = 1 971 spent; the 28th, priced 101, does not fit in 2 000
    expect(admitted).toBe(27);
    expect(refused!.status).toBe(429);
    expect(refused!.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 2000, duration: 60 });
    expect(refused!.headers.get('ratelimit-policy')?.replace(/;pk=:[^:]*:/g, '')).toBe('"budget";q=10000;w=3600, "budget-60s";q=2000;w=60');
    const status = await t.gql('{ rateLimit { windows { limit window used } } }', {}, key.secret);
    expect(status.body.data.rateLimit.windows).toEqual([{ limit: 10_000, window: 3600, used: 1971 }, { limit: 2000, window: 60, used: 1971 }]);
  });

  it('admits exactly the budget: 5 one-point operations pass, the 6th is 429 with Retry-After', async () => {
    const key = await keyWithBudget(5);
    for (let i = 1; i <= 5; i++) {
      const res = await t.gql(STATION, {}, key.secret);
      expect(res.status).toBe(200);
      expect(res.headers.get('ratelimit')).toMatch(new RegExp(`^"budget";r=${5 - i};t=\\d+;pk=:[A-Za-z0-9+/]{16}:$`));
    }
    const refused = await t.gql(STATION, {}, key.secret);
    expect(refused.status).toBe(429);
    expect(refused.body.data).toBeUndefined();
    expect(refused.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', gate: 'operation', cost: 1, limit: 5, remaining: 0 });
    const retryAfter = Number(refused.headers.get('retry-after'));
    // The window slides: the sixth fits once this minute's bucket has ended and a fifth of its 5
    // points has faded (12 s more).
    expect(retryAfter).toBeGreaterThanOrEqual(12);
    expect(retryAfter).toBeLessThanOrEqual(72);
    expect(refused.body.errors[0].extensions.retryAfter).toBe(retryAfter);
    expect(refused.headers.get('ratelimit-policy')?.replace(/;pk=:[^:]*:/g, '')).toBe('"budget";q=5;w=60');
  });

  it('executes nothing when refused: a refused mutation writes no row', async () => {
    const key = await keyWithBudget(15);
    const count = async () => (await db.db.select({ n: sql<number>`count(*)::int` }).from(observations))[0].n;
    const before = await count();
    expect((await t.gql(RECORD, { input: reading }, key.secret)).status).toBe(200);
    const refused = await t.gql(RECORD, { input: reading }, key.secret);
    expect(refused.status).toBe(429);
    expect(await count()).toBe(before + 1);
    // recordObservation costs 11 (weight 10 + its input object 1); the refusal spent nothing: 4 points are still there
    const status = await t.gql('{ rateLimit { remaining used limit } }', {}, key.secret);
    expect(status.body.data.rateLimit).toEqual({ remaining: 4, used: 11, limit: 15 });
  });

  it('refuses an operation above MAX_QUERY_COST with 400 QUERY_TOO_COMPLEX before executing', async () => {
    const key = await keyWithBudget(100_000);
    // stations 1 + edges 100 × (edge 1 + node 1 + observations 100 × 1) = 10 201
    const res = await t.gql('{ stations(first: 100) { edges { node { observations(last: 100) { temperatureC } } } } }', {}, key.secret);
    expect(res.status).toBe(400);
    expect(res.body.errors[0].extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', cost: 10_201, maxCost: 1000 });
    const status = await t.gql('{ rateLimit { used } }', {}, key.secret);
    expect(status.body.data.rateLimit.used).toBe(0);
  });

  it('charges the requested cost, then refunds what was not returned', async () => {
    const key = await keyWithBudget(1000);
    // requested: stations 1 + 50 × (edge 1 + node 1) = 101; the dataset has 36 stations → actual 1 + 36 × 2 = 73
    const res = await t.gql('{ stations(first: 50) { edges { node { id } } } }', {}, key.secret);
    expect(res.body.extensions.cost).toMatchObject({
      requestedQueryCost: 101,
      actualQueryCost: 73,
      throttleStatus: { maximumAvailable: 1000, currentlyAvailable: 927 },
    });
    expect(res.headers.get('ratelimit')).toMatch(/^"budget";r=927;t=\d+;pk=:[A-Za-z0-9+/]{16}:$/);
  });

  it('reports the same numbers in headers, extensions.cost, rateLimit and the store', async () => {
    const key = await keyWithBudget(50);
    await t.gql(STATION, {}, key.secret);
    const started = Date.now();
    const res = await t.gql('{ rateLimit { limit remaining used cost window resetAt } station(id: "AMS") { id } }', {}, key.secret);
    const status = res.body.data.rateLimit;
    expect(status).toMatchObject({ limit: 50, remaining: 48, used: 2, cost: 1, window: 60 });
    expect(res.body.extensions.cost.throttleStatus).toMatchObject({ maximumAvailable: 50, currentlyAvailable: 48 });
    expect(res.headers.get('ratelimit')).toMatch(/^"budget";r=48;/);
    const stored = await counterState(t.server.store, 'tg:budget', 60, keyTag(key.id));
    expect(stored.used).toBe(2);
    // resetAt and the store's msLeft name one bucket end, seen at two moments of this test: they
    // differ by at most the time it took (no fixed slack: a loaded machine only widens the bound).
    const elapsed = Date.now() - started;
    expect(Math.abs(Date.parse(status.resetAt) - Date.now() - stored.msLeft)).toBeLessThanOrEqual(elapsed + 5);
  });

  it('rateLimit costs nothing, and dryRun costs the rest without executing or charging it', async () => {
    const key = await keyWithBudget(100);
    const a = await t.gql('{ rateLimit { remaining cost } }', {}, key.secret);
    const b = await t.gql('{ rateLimit { remaining cost } }', {}, key.secret);
    expect(a.body.data.rateLimit).toEqual({ remaining: 100, cost: 0 });
    expect(b.body.data.rateLimit).toEqual({ remaining: 100, cost: 0 });
    // forecast 2 × 7 days = 14, station 1
    const dry = await t.gql('{ rateLimit(dryRun: true) { cost remaining } forecast(stationId: "LHR", days: 7) { date } station(id: "LHR") { name } }', {}, key.secret);
    expect(dry.status).toBe(200);
    expect(dry.body.data).toEqual({ rateLimit: { cost: 15, remaining: 100 } });
    const after = await t.gql('query($id: ID!) { apiKey(id: $id) { usage { coordinate remaining } } }', { id: key.id });
    expect(after.body.data.apiKey.usage).toContainEqual({ coordinate: 'Query.forecast', remaining: 40 }); // field gate untouched
    expect((await t.gql('{ rateLimit { remaining } }', {}, key.secret)).body.data.rateLimit.remaining).toBe(100);
    // a dry run whose status selection uses a fragment
    const withFragment = await t.gql('query { rateLimit(dryRun: true) { ...S } station(id: "LHR") { name } } fragment S on RateLimitStatus { cost }', {}, key.secret);
    expect(withFragment.body).toMatchObject({ data: { rateLimit: { cost: 1 } } });
  });

  it('takes root fields\' budgets with the operation\'s, and gives them back when the operation is refused', async () => {
    const key = await t.createKey({ budget: { points: 1, duration: 60 }, limits: [{ coordinate: 'Query.station', limit: 5, duration: 60 }] });
    const usage = async () => {
      const res = await t.gql('query($id: ID!) { apiKey(id: $id) { usage { coordinate remaining } } }', { id: key.id });
      return res.body.data.apiKey.usage.find((u: { coordinate: string }) => u.coordinate === 'Query.station').remaining;
    };
    expect((await t.gql(STATION, {}, key.secret)).status).toBe(200);
    expect(await usage()).toBe(4);
    expect((await t.gql(STATION, {}, key.secret)).status).toBe(429); // operation budget spent
    expect(await usage()).toBe(4); // the field's points taken with it were given back
    // a root field over its own budget is still refused at its path, with the rest standing
    const tight = await t.createKey({ limits: [{ coordinate: 'Query.station', limit: 1, duration: 60 }] });
    const res = await t.gql('{ a: station(id: "LHR") { id } b: station(id: "AMS") { id } rateLimit { limit } }', {}, tight.secret);
    expect(res.body.data.a).toEqual({ id: 'LHR' });
    expect(res.body.data.b).toBeNull();
    expect(res.body.errors).toMatchObject([{ path: ['b'], extensions: { code: 'RATE_LIMITED', coordinate: 'Query.station' } }]);
  });

  // On Redis: the IP gate, the operation budget and every limited root field (here two, one with two
  // windows) are decided by one command for a key this instance knows. Memory has no round trip.
  if (store === 'redis') it('decides a known key\'s request with one Redis command', async () => {
    const key = await keyWithBudget(1000);
    const query = '{ station(id: "LHR") { name } forecast(stationId: "LHR", days: 2) { highC } }';
    expect((await t.gql(query, {}, key.secret)).status).toBe(200); // first sight: the key is looked up and cached
    for (let i = 0; i < 3; i++) {
      const before = t.server.store.commands();
      const res = await t.gql(query, {}, key.secret);
      expect(res.status).toBe(200);
      expect(res.body.errors).toBeUndefined();
      expect(t.server.store.commands() - before).toBe(1);
    }
    // and what that one command took is all there: the budget, the IP's requests, both fields' windows
    const fieldUsed = async (coordinate: string, _limit: number, duration: number) =>
      (await counterState(t.server.store, 'tg:field', duration, `${keyTag(key.id)}:${coordinate}`)).used;
    expect(await fieldUsed('Query.station', 300, 60)).toBe(4);
    expect(await fieldUsed('Query.forecast', 2000, 3600)).toBe(4 * 2 * 2); // 2 days × 2 points, four times
  });

  it('refuses an absurd slicing value with 400 BAD_USER_INPUT before anything is spent', async () => {
    const key = await keyWithBudget(100);
    const res = await t.gql('query($n: Int) { stations(first: $n) { totalCount } }', { n: 2147483647 }, key.secret);
    expect(res.status).toBe(400);
    expect(res.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
    // Neither the operation budget nor the field's window lost a point.
    expect((await t.gql('{ rateLimit { remaining } }', {}, key.secret)).body.data.rateLimit.remaining).toBe(100);
    const usage = await t.gql('query($id: ID!) { apiKey(id: $id) { usage { coordinate remaining limit } } }', { id: key.id });
    expect(usage.body.data.apiKey.usage.find((u: any) => u.coordinate === 'Query.stations')).toMatchObject({ remaining: 600, limit: 600 });
  });
});

describe('operation gate in measure mode', () => {
  const server = useTestServer({ env: { COST_MODE: 'measure', MAX_QUERY_COST: '5' } });

  it('charges what it can: an operation within the budget is taken from it, exactly as in enforce mode', async () => {
    const key = await server.t.createKey({ budget: { points: 100, duration: 60 } });
    const res = await server.t.gql('{ stations(first: 10) { edges { node { id } } } }', {}, key.secret);
    expect(res.body.extensions.cost).toMatchObject({ requestedQueryCost: 21, actualQueryCost: 21, throttleStatus: { maximumAvailable: 100, currentlyAvailable: 79 } });
    expect((await server.t.gql('{ rateLimit { remaining } }', {}, key.secret)).body.data.rateLimit.remaining).toBe(79);
    // ...and above MAX_QUERY_COST (5) it is reported, not refused
    expect(res.status).toBe(200);
  });

  it('computes and reports, but never refuses', async () => {
    const key = await server.t.createKey({ budget: { points: 2, duration: 60 } });
    for (let i = 0; i < 3; i++) {
      const res = await server.t.gql('{ stations(first: 10) { edges { node { id } } } }', {}, key.secret);
      expect(res.status).toBe(200);
      expect(res.body.data.stations.edges).toHaveLength(10);
      expect(res.body.extensions.cost.requestedQueryCost).toBe(21);
      // over budget, so nothing is charged: the report says the 2 points are still there
      expect(res.body.extensions.cost.throttleStatus.currentlyAvailable).toBe(2);
    }
  });
});

describe('hardening', () => {
  const server = useTestServer();

  // Each case pins the guard that refuses it: its code and the words of its message.
  it.each<[string, () => { query: string; variables?: Record<string, unknown> }, number, string, RegExp]>([
    ['depth 200 (MAX_DEPTH 12)', () => ({ query: `{ stations { edges { node { ${'... on Station { '.repeat(200)} id ${'}'.repeat(200)} } } } }` }), 400, 'GRAPHQL_VALIDATION_FAILED', /depth limit of 12 exceeded/],
    ['31 aliases (MAX_ALIASES 30)', () => ({ query: `{ ${Array.from({ length: 31 }, (_, i) => `a${i}: station(id: "LHR") { name }`).join(' ')} }` }), 400, 'GRAPHQL_VALIDATION_FAILED', /Aliases limit of 30 exceeded, found 31/],
    ['2 100 tokens (MAX_TOKENS 2000)', () => ({ query: `{ ${'x '.repeat(2100)} }` }), 400, 'GRAPHQL_PARSE_FAILED', /more that 2000 tokens/],
    ['60 directives (MAX_DIRECTIVES 50)', () => ({ query: `{ __typename ${'@include(if: true) '.repeat(60)} }` }), 400, 'GRAPHQL_VALIDATION_FAILED', /Directives limit of 50 exceeded, found 60/],
    ['5 000 aliases (88 893 characters, over MAX_QUERY_CHARS)', () => ({ query: `{ ${Array.from({ length: 5000 }, (_, i) => `a${i}: __typename`).join(' ')} }` }), 400, 'QUERY_TOO_COMPLEX', /88893 characters; the most allowed is 20000/],
    ['a 1 MB query', () => ({ query: `{ __typename ${' '.repeat(1_000_000)} }` }), 400, 'QUERY_TOO_COMPLEX', /the most allowed is 20000/],
    ['a 100 KB query', () => ({ query: `{ __typename ${'#'.repeat(100_000)}\n }` }), 400, 'QUERY_TOO_COMPLEX', /the most allowed is 20000/],
    ['first: 2147483647', () => ({ query: '{ stations(first: 2147483647) { totalCount } }' }), 400, 'BAD_USER_INPUT', /must be between 0 and 10000, got 2147483647/],
    ['deeply nested fragments', () => ({
      query: `{ station(id: "LHR") { ...F0 } } ${Array.from({ length: 60 }, (_, i) => `fragment F${i} on Station { name ${i < 59 ? `...F${i + 1}` : ''} }`).join(' ')}`,
    }), 400, 'GRAPHQL_VALIDATION_FAILED', /depth limit of 12 exceeded/],
    ['a fragment cycle', () => ({ query: '{ station(id: "LHR") { ...A } } fragment A on Station { ...B } fragment B on Station { ...A }' }), 400, 'GRAPHQL_VALIDATION_FAILED', /Cannot spread fragment "A" within itself/],
    ['a batch while batching is off', () => ({ query: '[]' }), 400, 'BAD_REQUEST', /batch/i],
  ])('refuses %s with a clear 4xx, and the server stays up', async (_name, make, status, code, message) => {
    const { query, variables } = make();
    const res = query === '[]'
      ? await fetch(`${server.t.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': server.t.adminKey }, body: JSON.stringify([{ query: '{ __typename }' }, { query: '{ __typename }' }]) })
          .then(async (r) => ({ status: r.status, body: await r.json() }))
      : await server.t.gql(query, variables);
    expect(res.status).toBe(status);
    expect(res.body.errors[0].extensions.code).toBe(code);
    expect(res.body.errors[0].message).toMatch(message);
    expect((await server.t.gql('{ __typename }')).status).toBe(200);
  });

  it('admits exactly MAX_ALIASES aliases (30), and does not count aliases of __typename', async () => {
    const thirty = await server.t.gql(`{ ${Array.from({ length: 30 }, (_, i) => `a${i}: station(id: "LHR") { name }`).join(' ')} }`);
    expect(thirty.status).toBe(200);
    expect(Object.keys(thirty.body.data)).toHaveLength(30);
    const typenames = await server.t.gql(`{ ${Array.from({ length: 40 }, (_, i) => `t${i}: __typename`).join(' ')} }`);
    expect(typenames.status).toBe(200); // graphql-armor's allow list: __typename costs nothing to alias
  });

  it.each<[string, Record<string, unknown>, number, string]>([
    ['two operations and no operationName', { query: 'query A { __typename } query B { __typename }' }, 400, 'OPERATION_RESOLUTION_FAILURE'],
    ['an operationName that is not in the document', { query: 'query A { __typename }', operationName: 'Z' }, 400, 'OPERATION_RESOLUTION_FAILURE'],
    ['a subscription', { query: 'subscription { x }' }, 400, 'BAD_REQUEST'],
    ['a persisted query whose hash does not match', { query: '{ __typename }', extensions: { persistedQuery: { version: 1, sha256Hash: 'abc' } } }, 400, 'BAD_REQUEST'],
  ])('answers %s with a coded 4xx, not an internal error', async (_name, body, status, code) => {
    const res = await fetch(`${server.t.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': server.t.adminKey }, body: JSON.stringify(body) });
    const json = (await res.json()) as { errors: { extensions: { code: string } }[] };
    expect(res.status).toBe(status);
    expect(json.errors[0].extensions.code).toBe(code);
  });

  it.each<[string, string, Record<string, unknown>, number, string]>([
    ['a variable of the wrong type', 'query($n: Int) { stations(first: $n) { totalCount } }', { n: 'ten' }, 400, 'BAD_USER_INPUT'],
    ['an invalid DateTime variable', 'mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret } }', { i: { name: 'x', expiresAt: '2020-13-45' } }, 400, 'BAD_USER_INPUT'],
    ['a NUL byte in an id', 'query($id: ID!) { station(id: $id) { id } }', { id: 'L\u0000H' }, 200, 'none'],
    ['a NUL byte in a key name', 'mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret } }', { i: { name: 'a\u0000b' } }, 200, 'BAD_USER_INPUT'],
  ])('answers %s without an internal error', async (_name, query, variables, status, code) => {
    const res = await server.t.gql(query, variables);
    expect(res.status).toBe(status);
    expect(res.body.errors?.[0]?.extensions?.code ?? 'none').toBe(code);
  });

  it('refuses a forged audit cursor', async () => {
    const res = await server.t.gql('{ auditEvents(after: "ISE") { totalCount } }');
    expect(res.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'after' });
  });

  it('does not suggest field names to a client that guesses', async () => {
    const res = await server.t.gql('{ statio(id: "LHR") { name } }');
    expect(res.status).toBe(400);
    expect(res.body.errors[0].message).not.toMatch(/Did you mean/);
  });

  it('masks internal errors: no stack, no internal message, a request id the log also has', async () => {
    const broken = await openTestDatabase('pglite');
    const s = await startTestServer({ database: broken });
    try {
      expect((await s.gql('{ me { id } }')).status).toBe(200); // key now cached
      await broken.close(); // the database goes away under the server
      const res = await s.gql('{ me { id } }');
      const error = res.body.errors[0];
      expect(error.extensions.code).toBe('INTERNAL_SERVER_ERROR');
      expect(error.extensions.requestId).toBe(res.headers.get('x-request-id'));
      expect(JSON.stringify(res.body)).not.toMatch(/stack|PGlite|closed|at /i);
      expect(s.logs.some((l) => l.includes(error.extensions.requestId) && l.includes('unexpected error'))).toBe(true);
    } finally {
      await s.close();
    }
  });
});

describe('introspection in production', () => {
  it.each([
    // REQUIRE_HTTPS (on in production) would refuse the key over this plain-HTTP test first.
    [{ NODE_ENV: 'production', REQUIRE_HTTPS: 'false' }, 400],
    [{ NODE_ENV: 'production', REQUIRE_HTTPS: 'false', ALLOW_INTROSPECTION: 'true' }, 200],
    [{ NODE_ENV: 'development' }, 200],
  ])('%j → %i', (env, status) =>
    withTestServer({ env }, async (t) => {
      expect((await t.gql('{ __schema { queryType { name } } }')).status).toBe(status);
    }));

  it('refuses it naming the setting that turns it on (ALLOW_INTROSPECTION), not an Apollo constructor option', () =>
    withTestServer({ env: { NODE_ENV: 'production', REQUIRE_HTTPS: 'false' } }, async (t) => {
      const res = await t.gql('{ __schema { queryType { name } } }');
      expect(res.status).toBe(400);
      expect(res.body.errors).toHaveLength(1);
      expect(res.body.errors[0].extensions.code).toBe('GRAPHQL_VALIDATION_FAILED');
      expect(res.body.errors[0].message).toMatch(/ALLOW_INTROSPECTION=true/);
      expect(res.body.errors[0].message).not.toMatch(/ApolloServer|introspection: true/);
    }));
});

describe('HTTP batching, when enabled', () => {
  it('costs and charges every operation in the batch', () =>
    withTestServer({ env: { ALLOW_BATCHING: 'true' } }, async (t) => {
      const key = await t.createKey({ budget: { points: 3, duration: 60 } });
      const res = await fetch(`${t.url}/graphql`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', 'x-api-key': key.secret },
        body: JSON.stringify([STATION, STATION, STATION, STATION].map((query) => ({ query }))),
      });
      const body = (await res.json()) as any[];
      expect(body.map((r: any) => r.errors?.[0]?.extensions?.code ?? 'ok')).toEqual(['ok', 'ok', 'ok', 'RATE_LIMITED']);
    }));
});
