import { openTestDatabase, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { describeWithRedisCluster } from '../support/services';
import { until } from '../support/wait';

// On a cluster the address's counter lives in another hash slot than the key's, so the IP verdict
// is decided before the operation's take. A refused address must take nothing from the key.
describeWithRedisCluster('an IP-refused request on a Redis Cluster', () => {
  let db: TestDatabase;
  let t: TestServer;

  beforeAll(async () => {
    db = await openTestDatabase('pglite');
    t = await startTestServer({ database: db, store: 'cluster', env: { TRUST_PROXY: 'true', IP_LIMIT: '1' } });
    await until(async () => ((await (await fetch(`${t.url}/ready`)).json()) as { limiterStore: string }).limiterStore === 'up', 10_000);
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });

  it('spends nothing of the operation budget nor of its limited root fields', async () => {
    // Query.forecast's 40-a-second window made ten minutes long: a second-long window fades while
    // the test reads it (37 seen under load), and what is asserted is that nothing was taken.
    const key = await t.createKey({ scopes: ['read'], budget: { points: 100, duration: 3600 }, limits: [{ coordinate: 'Query.forecast', limit: 40, duration: 600 }, { coordinate: 'Query.forecast', limit: 2000, duration: 3600 }] });
    const from = { 'x-forwarded-for': '203.0.113.90' };
    const query = '{ forecast(stationId: "LHR", days: 2) { date } }'; // 4 points: the operation's and Query.forecast's
    expect((await t.gql(query, {}, key.secret, from)).status).toBe(200);
    const refused = await t.gql(query, {}, key.secret, from);
    expect(refused.status).toBe(429);
    expect(refused.body.errors[0].extensions.gate).toBe('ip');
    const status = await t.gql('{ rateLimit { used } }', {}, key.secret, { 'x-forwarded-for': '203.0.113.91' });
    expect(status.body.data.rateLimit.used).toBe(4);
    const usage = await t.gql('{ me { usage { coordinate limit remaining } } }', {}, key.secret, { 'x-forwarded-for': '203.0.113.92' });
    const forecast = usage.body.data.me.usage.filter((u: { coordinate: string }) => u.coordinate === 'Query.forecast');
    expect(forecast).toEqual(expect.arrayContaining([{ coordinate: 'Query.forecast', limit: 2000, remaining: 1996 }, { coordinate: 'Query.forecast', limit: 40, remaining: 36 }]));
  });
});
