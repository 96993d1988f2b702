import { sql } from 'drizzle-orm';
import { observations } from '../../src/weather/tables';
import { flushTestRedis, openTestDatabase, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { databaseBackends, hasRedis } from '../support/services';

const RECORD = `mutation Record($input: RecordObservationInput!) {
  recordObservation(input: $input) { id stationId temperatureC }
}`;
const reading = { stationId: 'OSL', temperatureC: -3.5, humidity: 80, windKph: 12 };

// The example API over real HTTP: the embedded default, and real Postgres + Redis when present.
const variants = databaseBackends().map((database) => ({ database, store: database === 'postgres' && hasRedis() ? ('redis' as const) : ('memory' as const) }));

describe.each(variants)('weather API on $database + $store', ({ database, store }) => {
  let db: TestDatabase;
  let t: TestServer;

  beforeAll(async () => {
    if (store === 'redis') await flushTestRedis();
    db = await openTestDatabase(database);
    t = await startTestServer({ database: db, store });
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });

  it('pages through stations with cursors', async () => {
    const query = 'query($after: String) { stations(first: 20, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } }';
    const first = (await t.gql(query)).body.data.stations;
    expect(first.totalCount).toBe(36);
    expect(first.edges).toHaveLength(20);
    expect(first.pageInfo.hasNextPage).toBe(true);
    const second = (await t.gql(query, { after: first.pageInfo.endCursor })).body.data.stations;
    expect(second.edges).toHaveLength(16);
    expect(second.pageInfo.hasNextPage).toBe(false);
    const ids = [...first.edges, ...second.edges].map((e: { node: { id: string } }) => e.node.id);
    expect(new Set(ids).size).toBe(36);
  });

  it('filters by country and returns observations newest first', async () => {
    const res = await t.gql('{ stations(first: 5, country: "de") { totalCount edges { node { id observations(last: 3) { observedAt } } } } }');
    const conn = res.body.data.stations;
    expect(conn.totalCount).toBe(2);
    for (const { node } of conn.edges) {
      const times = node.observations.map((o: { observedAt: string }) => Date.parse(o.observedAt));
      expect(times).toHaveLength(3);
      expect([...times].sort((a, b) => b - a)).toEqual(times);
    }
  });

  it('computes the same forecast twice', async () => {
    const q = '{ forecast(stationId: "SIN", days: 4) { date highC lowC precipitationChance summary } }';
    const a = (await t.gql(q)).body.data.forecast;
    expect(a).toHaveLength(4);
    expect((await t.gql(q)).body.data.forecast).toEqual(a);
  });

  it.each([
    ['an unknown station', '{ forecast(stationId: "NOPE", days: 2) { date } }', 'stationId'],
    ['days out of 1..14', '{ forecast(stationId: "LHR", days: 15) { date } }', 'days'],
    ['first out of 1..100', '{ stations(first: 101) { totalCount } }', 'first'],
    ['a forged cursor', '{ stations(first: 1, after: "bm9wZQ") { totalCount } }', 'after'],
  ])('refuses %s with BAD_USER_INPUT naming the field', async (_name, query, field) => {
    const res = await t.gql(query, {}, (await t.createKey()).secret);
    expect(res.status).toBe(200);
    expect(res.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
  });

  it('records an observation and refuses bad readings without writing', async () => {
    const writer = await t.createKey({ scopes: ['write'] });
    const count = async () => (await db.db.select({ n: sql<number>`count(*)::int` }).from(observations))[0].n;
    const before = await count();
    const ok = await t.gql(RECORD, { input: reading }, writer.secret);
    expect(ok.body.data.recordObservation).toMatchObject({ stationId: 'OSL', temperatureC: -3.5 });
    const bad = await t.gql(RECORD, { input: { ...reading, humidity: 140 } }, writer.secret);
    expect(bad.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'input.humidity' });
    const future = await t.gql(RECORD, { input: { ...reading, observedAt: '2999-01-01T00:00:00Z' } }, writer.secret);
    expect(future.body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
    expect(await count()).toBe(before + 1);
  });

  it('needs the write scope to record, and a refused reader spends nothing', async () => {
    const reader = await t.createKey({ scopes: ['read'] });
    const res = await t.gql(RECORD, { input: reading }, reader.secret);
    expect(res.status).toBe(403); // the whole operation was refused
    expect(res.body.errors[0].extensions).toMatchObject({ code: 'FORBIDDEN', requiredScopes: ['write'] });
    const usage = await t.gql('query($id: ID!) { apiKey(id: $id) { usage { coordinate remaining } } }', { id: reader.id });
    expect(usage.body.data.apiKey.usage).toContainEqual({ coordinate: 'Mutation.recordObservation', remaining: 110 });
  });

  it('limits recordObservation to 10 a minute per key: the 11th is RATE_LIMITED and writes nothing', async () => {
    const writer = await t.createKey({ scopes: ['write'] });
    const count = async () => (await db.db.select({ n: sql<number>`count(*)::int` }).from(observations))[0].n;
    const before = await count();
    for (let i = 1; i <= 10; i++) {
      const res = await t.gql(RECORD, { input: reading }, writer.secret);
      expect(res.body.errors).toBeUndefined();
    }
    const refused = await t.gql(RECORD, { input: reading }, writer.secret);
    expect(refused.status).toBe(200);
    expect(refused.body.data).toEqual({ recordObservation: null });
    expect(refused.body.errors[0]).toMatchObject({
      path: ['recordObservation'],
      extensions: { code: 'RATE_LIMITED', coordinate: 'Mutation.recordObservation', limit: 110, duration: 60, remaining: 0 },
    });
    expect(await count()).toBe(before + 10);
    // another key still has its own budget
    const other = await t.createKey({ scopes: ['write'] });
    expect((await t.gql(RECORD, { input: reading }, other.secret)).body.errors).toBeUndefined();
  });

  it('spends per list item, exactly as the README works it out (100 points, 50 stations × 5)', async () => {
    const key = await t.createKey({ limits: [{ coordinate: 'Station.observations', limit: 100, duration: 60 }] });
    const res = await t.gql('{ stations(first: 50) { edges { node { id observations(last: 5) { temperatureC } } } } }', {}, key.secret);
    const edges = res.body.data.stations.edges;
    expect(edges).toHaveLength(36); // the dataset has 36 stations: 20 fit, 16 are refused
    expect(edges.filter((e: any) => e.node.observations !== null)).toHaveLength(20);
    expect(edges.every((e: any) => typeof e.node.id === 'string')).toBe(true);
    expect(res.body.errors).toHaveLength(16);
    expect(res.body.errors[0]).toMatchObject({ path: ['stations', 'edges', 20, 'node', 'observations'], extensions: { code: 'RATE_LIMITED' } });
  });

  it('keeps the rest of the response when one field is over budget', async () => {
    const key = await t.createKey({ limits: [{ coordinate: 'Query.forecast', limit: 2, duration: 60 }] });
    const q = '{ station(id: "LHR") { name } forecast(stationId: "LHR", days: 1) { date } }';
    expect((await t.gql(q, {}, key.secret)).body.errors).toBeUndefined(); // 2 points
    const res = await t.gql(q, {}, key.secret);
    expect(res.status).toBe(200);
    expect(res.body.data.station).toEqual({ name: 'London Heathrow' });
    expect(res.body.errors.map((e: { extensions: { code: string } }) => e.extensions.code)).toEqual(['RATE_LIMITED']);
  });
});
