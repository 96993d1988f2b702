import { flushTestRedis, openTestDatabase, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { hasPostgres, hasRedis } from '../support/services';
import { until } from '../support/wait';

// Usage history (issue 26): a known mix served through two instances — admitted, refused by the
// budget, a field refused — read back exactly per key, per consumer and per field at MINUTE, HOUR
// and DAY; the same after both instances stop (their last counts flushed on the way out) and a
// new one starts.
const STATION = '{ station(id: "LHR") { name } }';
const OBSERVATIONS = '{ station(id: "LHR") { o1: observations(last: 1) { observedAt } o2: observations(last: 1) { observedAt } o3: observations(last: 1) { observedAt } } }';
const HISTORY = `query($id: ID!, $from: DateTime!, $to: DateTime!, $g: UsageGranularity) {
  apiKey(id: $id) { usageHistory(from: $from, to: $to, granularity: $g) { start operations refused points refunded errors refusals { gate coordinate count } fields { coordinate calls points refused } } } }`;
const CONSUMER_HISTORY = HISTORY.replace('apiKey(id: $id)', 'consumer(id: $id)');

type Bucket = { operations: number; refused: number; points: number; refunded: number; errors: number; refusals: { gate: string; coordinate: string | null; count: number }[]; fields: { coordinate: string; calls: number; points: number; refused: number }[] };

/** Buckets summed into one (a test may straddle a minute). */
function total(buckets: Bucket[]) {
  const sum = { operations: 0, refused: 0, points: 0, refunded: 0, errors: 0, refusals: {} as Record<string, number>, fields: {} as Record<string, { calls: number; points: number; refused: number }> };
  for (const b of buckets) {
    for (const k of ['operations', 'refused', 'points', 'refunded', 'errors'] as const) sum[k] += b[k];
    for (const r of b.refusals) sum.refusals[`${r.gate}${r.coordinate ? ` ${r.coordinate}` : ''}`] = (sum.refusals[`${r.gate}${r.coordinate ? ` ${r.coordinate}` : ''}`] ?? 0) + r.count;
    for (const f of b.fields) {
      const t = (sum.fields[f.coordinate] ??= { calls: 0, points: 0, refused: 0 });
      t.calls += f.calls;
      t.points += f.points;
      t.refused += f.refused;
    }
  }
  return sum;
}

describe('usage history', () => {
  const store = hasRedis() ? 'redis' : 'memory';
  let db: TestDatabase;
  let servers: TestServer[] = [];

  beforeAll(async () => {
    if (store === 'redis') await flushTestRedis();
    db = await openTestDatabase(hasPostgres() ? 'postgres' : 'pglite');
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    await db?.dispose();
  });

  it('a known mix through two instances reads back exactly per key, per consumer and per field, at every granularity — and again after both stop and a new one starts', async () => {
    // A flush interval longer than the test: what is read back was written by the clean stops.
    const env = { USAGE_FLUSH_SECONDS: '60', KEY_CACHE_TTL_SECONDS: '600' };
    servers = [await startTestServer({ database: db, store, env }), ...(store === 'redis' ? [await startTestServer({ database: db, store, env })] : [])];
    const ok = async (query: string, variables: Record<string, unknown> = {}) => {
      const res = await servers[0].gql(query, variables);
      expect(res.body.errors).toBeUndefined();
      return res.body.data;
    };
    const consumer = (await ok('mutation { createConsumer(input: { name: "Acme", budgets: [{ points: 10, duration: 3600 }], limits: [{ coordinate: "Station.observations", limit: 2, duration: 3600 }] }) { id } }')).createConsumer;
    const key = async () => (await ok(`mutation { createApiKey(input: { name: "k", scopes: ["read"], consumerId: "${consumer.id}" }) { secret apiKey { id } } }`)).createApiKey;
    const [a, b] = [await key(), await key()];

    // B: one operation, one of its three observations refused by the field's own window (2 an hour).
    const partial = await servers[servers.length - 1].gql(OBSERVATIONS, {}, b.secret);
    expect(partial.status).toBe(200);
    expect(partial.body.errors).toMatchObject([{ path: ['station', 'o3'], extensions: { code: 'RATE_LIMITED', coordinate: 'Station.observations' } }]);
    // A: stations until the consumer's 10 points run out, alternating instances.
    const answers = [];
    for (let i = 0; i < 10; i++) answers.push(await servers[i % servers.length].gql(STATION, {}, a.secret));
    const admitted = answers.filter((r) => r.status === 200);
    const refused = answers.filter((r) => r.status === 429);
    expect(refused.every((r) => r.body.errors[0].extensions.gate === 'operation')).toBe(true);
    expect(admitted.length + refused.length).toBe(10);
    expect(refused.length).toBeGreaterThan(0);

    const cost = (r: { body: { extensions: { cost: { requestedQueryCost: number; actualQueryCost: number } } } }) => r.body.extensions.cost;
    const expectedA = {
      operations: admitted.length, refused: refused.length, errors: 0,
      points: admitted.reduce((n, r) => n + cost(r).actualQueryCost, 0),
      refunded: admitted.reduce((n, r) => n + cost(r).requestedQueryCost - cost(r).actualQueryCost, 0),
      refusals: { budget: refused.length },
      fields: { 'Query.station': { calls: admitted.length, points: admitted.length, refused: 0 } },
    };
    const expectedB = {
      operations: 1, refused: 0, errors: 0,
      points: cost(partial).actualQueryCost,
      refunded: cost(partial).requestedQueryCost - cost(partial).actualQueryCost,
      refusals: { 'field Station.observations': 1 },
      fields: { 'Query.station': { calls: 1, points: 1, refused: 0 }, 'Station.observations': { calls: 2, points: 2, refused: 1 } },
    };
    // C, a key of its own: asks for 50 stations, gets fewer; the difference is refunded.
    const c = await servers[0].createKey({ name: 'c' });
    const list = await servers[servers.length - 1].gql('{ stations(first: 50) { edges { node { id } } } }', {}, c.secret);
    expect(list.status).toBe(200);
    const expectedC = {
      operations: 1, refused: 0, errors: 0, points: cost(list).actualQueryCost,
      refunded: cost(list).requestedQueryCost - cost(list).actualQueryCost,
      refusals: {}, fields: { 'Query.stations': { calls: 1, points: expect.any(Number), refused: 0 } },
    };
    expect(expectedC.refunded).toBeGreaterThan(0);

    // Both stop (what SIGTERM does), each writing its last counts; a new instance reads them.
    for (const s of servers) await s.close();
    servers = [await startTestServer({ database: db, store, env })];
    const now = Date.now();
    for (const [g, span] of [['MINUTE', 3_600_000], ['HOUR', 3_600_000], ['DAY', 86_400_000]] as const) {
      const range = { from: new Date(now - span).toISOString(), to: new Date(now + span).toISOString(), g };
      const read = async (query: string, id: string) => total((await ok(query, { id, ...range }))[query === HISTORY ? 'apiKey' : 'consumer'].usageHistory);
      expect(await read(HISTORY, a.apiKey.id)).toEqual(expectedA);
      expect(await read(HISTORY, b.apiKey.id)).toEqual(expectedB);
      expect(await read(HISTORY, c.id)).toEqual(expectedC);
      expect(await read(CONSUMER_HISTORY, consumer.id)).toEqual({
        operations: expectedA.operations + 1, refused: expectedA.refused, errors: 0,
        points: expectedA.points + expectedB.points, refunded: expectedA.refunded + expectedB.refunded,
        refusals: { ...expectedA.refusals, ...expectedB.refusals },
        fields: { 'Query.station': { calls: admitted.length + 1, points: admitted.length + 1, refused: 0 }, 'Station.observations': expectedB.fields['Station.observations'] },
      });
    }

    // A key reads its own history through `me` and its consumer's through `me { consumer }`; nothing else.
    // Its consumer's budget is spent: raise it (what was spent is kept) so A can ask.
    await ok(`mutation { updateConsumer(id: "${consumer.id}", input: { budgets: [{ points: 1000, duration: 3600 }] }) { id } }`);
    const other = await servers[0].gql(HISTORY, { id: c.id, from: new Date(now - 3_600_000).toISOString(), to: new Date(now).toISOString(), g: 'HOUR' }, a.secret);
    expect(other.body.errors).toMatchObject([{ extensions: { code: 'FORBIDDEN' } }]);
    const own = await servers[0].gql('query($from: DateTime!, $to: DateTime!) { me { usageHistory(from: $from, to: $to) { operations } consumer { usageHistory(from: $from, to: $to) { operations } } } }', { from: new Date(now - 3_600_000).toISOString(), to: new Date(now + 3_600_000).toISOString() }, a.secret);
    expect(own.body.errors).toBeUndefined();
    const sumOps = (buckets: { operations: number }[]) => buckets.reduce((n, x) => n + x.operations, 0);
    expect(sumOps(own.body.data.me.usageHistory)).toBe(expectedA.operations);
    expect(sumOps(own.body.data.me.consumer.usageHistory)).toBe(expectedA.operations + 1);
  });

  it('with the default settings, an operation is readable within 5 seconds', async () => {
    for (const s of servers) await s.close();
    servers = [await startTestServer({ database: db, store })];
    const key = await servers[0].createKey({ name: 'fresh' });
    const sentAt = Date.now();
    expect((await servers[0].gql(STATION, {}, key.secret)).status).toBe(200);
    const range = { id: key.id, from: new Date(sentAt - 60_000).toISOString(), to: new Date(sentAt + 60_000).toISOString(), g: 'MINUTE' };
    // Generous bound for a loaded machine; the promise is USAGE_FLUSH_SECONDS (2) plus one write.
    await until(async () => total((await servers[0].gql(HISTORY, range)).body.data.apiKey.usageHistory).operations === 1, 10_000);
    expect(servers[0].config.usage.flushMs).toBe(2_000);
  });
});

