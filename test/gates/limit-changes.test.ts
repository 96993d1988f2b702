import { flushTestRedis, openTestDatabase, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { hasRedisCluster, storeBackends } from '../support/services';
import { until } from '../support/wait';

// Counters are named by who, what and which window length — never by the limit — so raising or
// lowering a limit keeps what was spent in the window.
const UPDATE = 'mutation($id: ID!, $input: UpdateApiKeyInput!) { updateApiKey(id: $id, input: $input) { id } }';
const STATION = '{ station(id: "LHR") { name } }';

const stores: ('memory' | 'redis' | 'cluster')[] = [...storeBackends(), ...(hasRedisCluster() ? ['cluster' as const] : [])];

describe.each(stores)('changing a limit on the %s store', (store) => {
  let db: TestDatabase;
  let t: TestServer;

  beforeAll(async () => {
    if (store === 'redis') await flushTestRedis();
    db = await openTestDatabase('pglite');
    t = await startTestServer({ database: db, store });
    // on a cluster, count there from the first request (before it is reached, insurance counts in memory)
    if (store === 'cluster') await until(async () => ((await (await fetch(`${t.url}/ready`)).json()) as { limiterStore: string }).limiterStore === 'up', 10_000);
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });

  it('raising a key\'s budget from 50 to 80 leaves 30, not 80', async () => {
    const key = await t.createKey({ scopes: ['read'], budget: { points: 50, duration: 600 } });
    // stations(first: 12): 1 + 12 × 2 = 25 points, all returned; twice spends the budget
    for (let i = 0; i < 2; i++) expect((await t.gql('{ stations(first: 12) { edges { node { id } } } }', {}, key.secret)).status).toBe(200);
    expect((await t.gql(STATION, {}, key.secret)).status).toBe(429);
    expect((await t.gql(UPDATE, { id: key.id, input: { budget: { points: 80, duration: 600 } } })).body.errors).toBeUndefined();
    const status = await t.gql('{ rateLimit { used remaining limit } }', {}, key.secret);
    expect(status.body.data.rateLimit).toEqual({ used: 50, remaining: 30, limit: 80 });
  });

  it('raising a field limit from 3 to 5 admits 2 more calls, not 5', async () => {
    const key = await t.createKey({ scopes: ['read'], limits: [{ coordinate: 'Query.station', limit: 3, duration: 600 }] });
    for (let i = 0; i < 3; i++) expect((await t.gql(STATION, {}, key.secret)).body.data.station).not.toBeNull();
    expect((await t.gql(STATION, {}, key.secret)).body.data.station).toBeNull();
    expect((await t.gql(UPDATE, { id: key.id, input: { limits: [{ coordinate: 'Query.station', limit: 5, duration: 600 }] } })).body.errors).toBeUndefined();
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push((await t.gql(STATION, {}, key.secret)).body.data.station !== null);
    expect(answers).toEqual([true, true, false]);
  });
});
