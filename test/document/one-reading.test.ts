import { flushTestRedis, openTestDatabase, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { fanOutDocument } from '../support/hostile-documents';
import { storeBackends } from '../support/services';

// Every gate reads an operation the way graphql-js executes it: fields merged by response key,
// a fragment spread twice collected once, root fields found inside fragments. Charged once,
// refunded once, whatever the shape of the document.

const USAGE = '{ me { usage { coordinate limit remaining } } }';
const STATUS = '{ rateLimit { used remaining } }';

describe.each(storeBackends())('one reading of the document on the %s store', (store) => {
  let db: TestDatabase;
  let t: TestServer;

  beforeAll(async () => {
    if (store === 'redis') await flushTestRedis();
    db = await openTestDatabase('pglite');
    t = await startTestServer({ database: db, store, env: { ALLOW_BATCHING: 'true', MAX_QUERY_COST: '100000', MAX_QUERY_STEPS: '300' } });
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });

  const newKey = () => t.createKey({ scopes: ['read'], budget: { points: 1000, duration: 600 } }).then((k) => k.secret);
  const fieldRemaining = async (key: string, coordinate: string, limit: number) => {
    const usage = (await t.gql(USAGE, {}, key)).body.data.me.usage as { coordinate: string; limit: number; remaining: number }[];
    return usage.find((u) => u.coordinate === coordinate && u.limit === limit)?.remaining;
  };
  const used = async (key: string) => (await t.gql(STATUS, {}, key)).body.data.rateLimit.used as number;
  const batch = async (key: string, operations: { query: string; variables?: Record<string, unknown> }[]) => {
    const res = await fetch(`${t.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body: JSON.stringify(operations) });
    return { status: res.status, body: (await res.json()) as any[] };
  };

  it('{ ...A ...A }: a fragment spread twice is charged once, to the operation and to the field', async () => {
    const key = await newKey();
    // forecast: weight 2 × 2 days = 4 points, in both its windows
    const res = await t.gql('{ ...A ...A } fragment A on Query { forecast(stationId: "LHR", days: 2) { date } }', {}, key);
    expect(res.status).toBe(200);
    expect(res.body.data.forecast).toHaveLength(2);
    expect(res.body.extensions.cost).toMatchObject({ requestedQueryCost: 4, actualQueryCost: 4 });
    expect(await used(key)).toBe(4);
    expect(await fieldRemaining(key, 'Query.forecast', 2000)).toBe(1996);
  });

  it('a response key repeated (directly and through fragments) is one field: charged once', async () => {
    const key = await newKey();
    const query = '{ forecast(stationId: "LHR", days: 2) { date } forecast(stationId: "LHR", days: 2) { highC } ...B } fragment B on Query { forecast(stationId: "LHR", days: 2) { lowC } }';
    const res = await t.gql(query, {}, key);
    expect(res.status).toBe(200);
    expect(Object.keys(res.body.data.forecast[0]).sort()).toEqual(['date', 'highC', 'lowC']);
    expect(res.body.extensions.cost.requestedQueryCost).toBe(4);
    expect(await used(key)).toBe(4);
    expect(await fieldRemaining(key, 'Query.forecast', 2000)).toBe(1996);
  });

  it('aliases are separate fields: charged once each', async () => {
    const key = await newKey();
    const res = await t.gql('{ a: forecast(stationId: "LHR", days: 2) { date } b: forecast(stationId: "OSL", days: 3) { date } }', {}, key);
    expect(res.status).toBe(200);
    expect(res.body.extensions.cost.requestedQueryCost).toBe(10);
    expect(await fieldRemaining(key, 'Query.forecast', 2000)).toBe(1990);
  });

  it('a limited root field inside a fragment is taken with the operation, once, and the operation refunded once', async () => {
    const key = await newKey();
    // requested: stations 1 + 50 × (edge 1 + node 1) = 101; 36 stations exist → actual 1 + 36 × 2 = 73
    const res = await t.gql('query { ...S } fragment S on Query { ... on Query { stations(first: 50) { edges { node { id } } } } }', {}, key);
    expect(res.status).toBe(200);
    expect(res.body.data.stations.edges).toHaveLength(36);
    expect(res.body.extensions.cost).toMatchObject({ requestedQueryCost: 101, actualQueryCost: 73 });
    expect(await used(key)).toBe(73);
    // the field spends `first` points, once
    expect(await fieldRemaining(key, 'Query.stations', 600)).toBe(550);
  });

  it('a field skipped by @skip/@include through a variable costs nothing and is not taken', async () => {
    const key = await newKey();
    const query = 'query($no: Boolean!) { ...S } fragment S on Query { stations(first: 5) @include(if: $no) { edges { node { id } } } station(id: "LHR") { name } }';
    const res = await t.gql(query, { no: false }, key);
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual({ station: { name: expect.any(String) } });
    expect(res.body.extensions.cost.requestedQueryCost).toBe(1);
    expect(await fieldRemaining(key, 'Query.stations', 600)).toBe(600);
  });

  it('a dry run spelt through an alias and a fragment executes nothing and charges nothing', async () => {
    const key = await newKey();
    const res = await t.gql('{ ...D stations(first: 20) { edges { node { id } } } } fragment D on Query { status: rateLimit(dryRun: true) { cost remaining } }', {}, key);
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual({ status: { cost: 41, remaining: 1000 } });
    expect(await used(key)).toBe(0);
    expect(await fieldRemaining(key, 'Query.stations', 600)).toBe(600);
  });

  it('a document that takes more steps to read than MAX_QUERY_STEPS is 400 QUERY_TOO_COMPLEX, and nothing is taken', async () => {
    const key = await newKey();
    // 80 spreads on each of five levels: ~400 steps to read, over this server's 300
    const document = fanOutDocument({ breadth: 80, depth: 5, on: 'Query', inline: false, aliases: false, directives: false });
    const res = await t.gql(document.query, document.variables, key);
    expect(res.status).toBe(400);
    expect(res.body.errors[0].extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', maxSteps: 300 });
    expect(res.body.data).toBeUndefined();
    expect(await used(key)).toBe(0);
  });

  describe('HTTP batching: each operation has its own admission', () => {
    it('a dry run beside a plain operation stays a dry run; the other runs and is charged on its own', async () => {
      const key = await newKey();
      const res = await batch(key, [
        { query: '{ rateLimit(dryRun: true) { cost } stations(first: 100) { edges { node { id } } } }' },
        { query: '{ station(id: "LHR") { name } }' },
      ]);
      expect(res.status).toBe(200);
      expect(res.body[0].data).toEqual({ rateLimit: { cost: 201 } });
      expect(res.body[1].data.station.name).toEqual(expect.any(String));
      expect(res.body[1].extensions.cost).toMatchObject({ requestedQueryCost: 1, actualQueryCost: 1 });
      expect(await used(key)).toBe(1);
      expect(await fieldRemaining(key, 'Query.stations', 600)).toBe(600);
    });

    it('a mixed batch charges and refunds each operation on its own', async () => {
      const key = await newKey();
      const res = await batch(key, [
        { query: '{ stations(first: 50) { edges { node { id } } } }' }, // 101 requested, 73 returned
        { query: '{ station(id: "LHR") { name } }' }, // 1
        { query: '{ __typename' }, // a syntax error: nothing charged, nothing refunded
        { query: '{ forecast(stationId: "LHR", days: 3) { date } }' }, // 6
      ]);
      expect(res.status).toBe(400); // one status for the batch: Apollo gives it the syntax error's
      expect(res.body[0].extensions.cost).toMatchObject({ requestedQueryCost: 101, actualQueryCost: 73 });
      expect(res.body[1].extensions.cost).toMatchObject({ requestedQueryCost: 1, actualQueryCost: 1 });
      expect(res.body[2].errors[0].extensions.code).toBe('GRAPHQL_PARSE_FAILED');
      expect(res.body[3].extensions.cost).toMatchObject({ requestedQueryCost: 6, actualQueryCost: 6 });
      expect(await used(key)).toBe(73 + 1 + 6);
    });
  });
});

describe.each(storeBackends())('header errors are metered by the IP gate on the %s store', (store) => {
  let db: TestDatabase;
  let t: TestServer;

  beforeAll(async () => {
    if (store === 'redis') await flushTestRedis();
    db = await openTestDatabase('pglite');
    t = await startTestServer({ database: db, store, env: { TRUST_PROXY: 'true', IP_LIMIT: '3', AUTH_FAILURE_LIMIT: '100' } });
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });

  it('a malformed Authorization header spends the address\'s request budget: the 4th of 3 is 429', async () => {
    const from = { 'x-forwarded-for': '198.51.100.77', authorization: 'Basic dXNlcjpwYXNz' };
    for (let i = 1; i <= 3; i++) {
      const res = await t.gql('{ __typename }', {}, null as unknown as string, from);
      expect(res.status).toBe(401);
      expect(res.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');
    }
    const refused = await t.gql('{ __typename }', {}, null as unknown as string, from);
    expect(refused.status).toBe(429);
    expect(refused.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', gate: 'ip' });
  });

  it('failed authentications through a malformed header block the address like bad keys do', async () => {
    const blocking = await startTestServer({ database: db, store, env: { TRUST_PROXY: 'true', IP_LIMIT: '100', AUTH_FAILURE_LIMIT: '2' } });
    try {
      const from = { 'x-forwarded-for': '198.51.100.78', authorization: 'Token abc' };
      for (let i = 1; i <= 2; i++) expect((await blocking.gql('{ __typename }', {}, null as unknown as string, from)).status).toBe(401);
      const refused = await blocking.gql('{ __typename }', {}, null as unknown as string, from);
      expect(refused.status).toBe(429);
      expect(refused.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', gate: 'auth-failures' });
    } finally {
      await blocking.close();
    }
  });
});
