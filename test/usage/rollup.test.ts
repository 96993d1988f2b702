import { openTestDatabase, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { databaseBackends } from '../support/services';
import { until } from '../support/wait';

// Usage history over time (issue 26), on an injected clock: each minute's counts land in their
// minute, hour and day (UTC) as they are written — no roll-up job — and each granularity is
// pruned past its own retention while the coarser ones stay. Then who spent the most, and the
// ranges a query may not ask for.
const STATION = '{ station(id: "LHR") { name } }';
const HISTORY = `query($id: ID!, $from: DateTime!, $to: DateTime!, $g: UsageGranularity) {
  apiKey(id: $id) { usageHistory(from: $from, to: $to, granularity: $g) { start operations points } } }`;
const MINUTE = 60_000;
const HOUR = 3_600_000;
const DAY = 86_400_000;

describe.each(databaseBackends())('usage roll-up and retention on %s', (backend) => {
  let db: TestDatabase;
  let t: TestServer;
  // 23:58:30 UTC on the 1st of March: the next requests cross a minute, an hour and a day.
  const base = Date.UTC(2026, 2, 1, 23, 58, 30);
  let now = base;

  beforeAll(async () => {
    db = await openTestDatabase(backend);
    t = await startTestServer({ database: db, now: () => now, env: { USAGE_FLUSH_SECONDS: '60' } });
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });

  const history = async (id: string, g: string, from: number, to: number) => {
    const res = await t.gql(HISTORY, { id, g, from: new Date(from).toISOString(), to: new Date(to).toISOString() });
    expect(res.body.errors).toBeUndefined();
    return res.body.data.apiKey.usageHistory.map((b: { start: string; operations: number }) => [b.start, b.operations]);
  };

  it('each minute is added to its minute, hour and day; minutes go after 48 hours, hours after 90 days, days after 730', async () => {
    const key = await t.createKey({ name: 'charted' });
    const writer = t.server.tollgate.services.usage.writer!;
    for (const at of [base, base + 2 * MINUTE + 10_000, base + 2 * MINUTE + 50_000]) {
      now = at; // 23:58:30 on the 1st; 00:00:40 and 00:01:20 on the 2nd
      expect((await t.gql(STATION, {}, key.secret)).status).toBe(200);
    }
    now = base + 4 * MINUTE; // the minute of the last request has ended
    await writer.flush();

    const from = Date.UTC(2026, 2, 1, 0, 0);
    const to = Date.UTC(2026, 2, 2, 23, 59);
    expect(await history(key.id, 'MINUTE', base - HOUR, base + HOUR)).toEqual([
      ['2026-03-01T23:58:00.000Z', 1],
      ['2026-03-02T00:00:00.000Z', 1],
      ['2026-03-02T00:01:00.000Z', 1],
    ]);
    expect(await history(key.id, 'HOUR', from, to)).toEqual([['2026-03-01T23:00:00.000Z', 1], ['2026-03-02T00:00:00.000Z', 2]]);
    expect(await history(key.id, 'DAY', from, to)).toEqual([['2026-03-01T00:00:00.000Z', 1], ['2026-03-02T00:00:00.000Z', 2]]);

    // A second flush of the same minute adds to it (another instance writing the same bucket does the same).
    now = base + 2 * MINUTE + 55_000;
    expect((await t.gql(STATION, {}, key.secret)).status).toBe(200);
    now = base + 4 * MINUTE;
    await writer.flush();
    expect(await history(key.id, 'MINUTE', base - HOUR, base + HOUR)).toEqual([
      ['2026-03-01T23:58:00.000Z', 1],
      ['2026-03-02T00:00:00.000Z', 1],
      ['2026-03-02T00:01:00.000Z', 2],
    ]);
    expect(await history(key.id, 'DAY', from, to)).toEqual([['2026-03-01T00:00:00.000Z', 1], ['2026-03-02T00:00:00.000Z', 3]]);

    // 47 hours later nothing is pruned; at 49 the minutes are gone and the hours and days stay.
    expect(await writer.prune(base + 47 * HOUR)).toBe(0);
    expect(await history(key.id, 'MINUTE', base - HOUR, base + HOUR)).toHaveLength(3);
    expect(await writer.prune(base + 49 * HOUR)).toBeGreaterThanOrEqual(3);
    expect(await history(key.id, 'MINUTE', base - HOUR, base + HOUR)).toEqual([]);
    expect(await history(key.id, 'HOUR', from, to)).toHaveLength(2);
    await writer.prune(base + 91 * DAY);
    expect(await history(key.id, 'HOUR', from, to)).toEqual([]);
    expect(await history(key.id, 'DAY', from, to)).toHaveLength(2);
    await writer.prune(base + 732 * DAY);
    expect(await history(key.id, 'DAY', from, to)).toEqual([]);
  });

  it('usageTop ranks consumers and keys by points spent in a range', async () => {
    now = base + 3 * DAY;
    const consumer = async (name: string) => (await t.gql(`mutation { createConsumer(input: { name: "${name}" }) { id } }`)).body.data.createConsumer.id;
    const [big, small] = [await consumer('Big'), await consumer('Small')];
    const key = async (consumerId: string) => (await t.gql(`mutation { createApiKey(input: { name: "k", scopes: ["read"], consumerId: "${consumerId}" }) { secret apiKey { id } } }`)).body.data.createApiKey;
    const [b1, b2, s1] = [await key(big), await key(big), await key(small)];
    const spend = async (secret: string, times: number) => {
      for (let i = 0; i < times; i++) expect((await t.gql('{ stations(first: 3) { edges { node { id } } } }', {}, secret)).status).toBe(200);
    };
    await spend(b1.secret, 2);
    await spend(b2.secret, 2);
    await spend(s1.secret, 3);
    now += 2 * MINUTE;
    await t.server.tollgate.services.usage.writer!.flush();

    const range = { from: new Date(base + 3 * DAY - HOUR).toISOString(), to: new Date(base + 3 * DAY + HOUR).toISOString() };
    const top = async (by: string) => {
      const res = await t.gql('query($from: DateTime!, $to: DateTime!, $by: UsageRankBy) { usageTop(from: $from, to: $to, by: $by, first: 2) { consumer { name } key { id } points operations } }', { ...range, by });
      expect(res.body.errors).toBeUndefined();
      return res.body.data.usageTop;
    };
    const byConsumer = await top('CONSUMER');
    expect(byConsumer.map((r: { consumer: { name: string }; operations: number }) => [r.consumer.name, r.operations])).toEqual([['Big', 4], ['Small', 3]]);
    expect(byConsumer[0].points).toBe((byConsumer[1].points / 3) * 4);
    // By key, with first: 2: the admin key (which made the consumers and keys) spent the most, then s1.
    const admin = (await t.gql('{ me { id } }')).body.data.me.id;
    const byKey = await top('KEY');
    expect(byKey.map((r: { key: { id: string }; operations: number }) => [r.key.id, r.operations])).toEqual([[admin, 5], [s1.apiKey.id, 3]]);

    // Everyone's, summed: the admin key's 5, b1's 2, b2's 2 and s1's 3; points as the ranking's.
    const totals = (await t.gql('query($from: DateTime!, $to: DateTime!) { usageTotals(from: $from, to: $to) { operations refused points } }', range)).body.data.usageTotals;
    const everyKey = (await t.gql('query($from: DateTime!, $to: DateTime!) { usageTop(from: $from, to: $to, by: KEY, first: 100) { points } }', range)).body.data.usageTop;
    expect(totals).toEqual({ operations: 12, refused: 0, points: everyKey.reduce((sum: number, r: { points: number }) => sum + r.points, 0) });
  });

  it('a key moved to another consumer leaves what it spent before with the first one — in the minute, the hour and the day', async () => {
    now = base + 5 * DAY + 5 * MINUTE; // 00:05
    const consumer = async (name: string) => (await t.gql(`mutation { createConsumer(input: { name: "${name}" }) { id } }`)).body.data.createConsumer.id;
    const [first, second] = [await consumer('First'), await consumer('Second')];
    const made = (await t.gql(`mutation { createApiKey(input: { name: "mover", scopes: ["read"], consumerId: "${first}" }) { secret apiKey { id } } }`)).body.data.createApiKey;
    const move = async (to: string) => expect((await t.gql(`mutation { updateApiKey(id: "${made.apiKey.id}", input: { consumerId: "${to}" }) { id } }`)).body.errors).toBeUndefined();
    const call = async () => expect((await t.gql(STATION, {}, made.secret)).status).toBe(200);
    await call();
    await call();
    now += 25 * MINUTE; // 00:30: moved, then one call
    await move(second);
    await until(async () => (await t.gql('{ me { consumer { id } } }', {}, made.secret)).body.data.me.consumer.id === second, 5_000);
    await call();
    now += 10_000; // the same minute: moved back and forth
    await move(first);
    await until(async () => (await t.gql('{ me { consumer { id } } }', {}, made.secret)).body.data.me.consumer.id === first, 5_000);
    await call();
    now += 2 * MINUTE;
    await t.server.tollgate.services.usage.writer!.flush();

    const range = { from: new Date(base + 5 * DAY - HOUR).toISOString(), to: new Date(base + 5 * DAY + 2 * HOUR).toISOString() };
    const ops = async (field: string, id: string, g: string) => {
      const res = await t.gql(`query($from: DateTime!, $to: DateTime!) { ${field}(id: "${id}") { usageHistory(from: $from, to: $to, granularity: ${g}) { operations } } }`, range);
      expect(res.body.errors).toBeUndefined();
      return res.body.data[field].usageHistory.reduce((n: number, b: { operations: number }) => n + b.operations, 0);
    };
    // `me { consumer }` reads count as operations too: only STATION calls are compared, by difference.
    for (const g of ['MINUTE', 'HOUR', 'DAY']) {
      const [byKey, byFirst, bySecond] = [await ops('apiKey', made.apiKey.id, g), await ops('consumer', first, g), await ops('consumer', second, g)];
      expect(byFirst + bySecond).toBe(byKey);
      expect(bySecond).toBe(2); // one call and one `me` read while under the second
      expect(byFirst).toBe(byKey - 2);
    }
  });

  it('granularity: null means the default (HOUR)', async () => {
    const key = await t.createKey({ name: 'nulls' });
    const res = await t.gql('query($id: ID!, $from: DateTime!, $to: DateTime!) { apiKey(id: $id) { usageHistory(from: $from, to: $to, granularity: null) { start } } }', { id: key.id, from: new Date(base).toISOString(), to: new Date(base + 30 * DAY).toISOString() });
    expect(res.body.errors).toBeUndefined();
    expect(res.body.data.apiKey.usageHistory).toEqual([]);
  });

  it.each([
    ['"from" after "to"', 'MINUTE', 0, -MINUTE, /"from" must not be after "to"/],
    ['25 hours of minutes', 'MINUTE', 0, 25 * HOUR, /MINUTE history covers at most 24 hours/],
    ['32 days of hours', 'HOUR', 0, 32 * DAY, /HOUR history covers at most 31 days/],
    ['732 days of days', 'DAY', 0, 732 * DAY, /DAY history covers at most 731 days/],
  ])('asking for %s is BAD_USER_INPUT, with a message that says what to do', async (_, g, fromOffset, toOffset, message) => {
    const key = await t.createKey({ name: 'asks' });
    const res = await t.gql(HISTORY, { id: key.id, g, from: new Date(base + fromOffset).toISOString(), to: new Date(base + toOffset).toISOString() });
    expect(res.status).toBe(200);
    expect(res.body.errors).toMatchObject([{ message: expect.stringMatching(message), extensions: { code: 'BAD_USER_INPUT' } }]);
  });

  it.each([0, 101])('usageTop(first: %d) is BAD_USER_INPUT', async (first) => {
    const res = await t.gql(`{ usageTop(from: "2026-03-01T00:00:00Z", to: "2026-03-02T00:00:00Z", first: ${first}) { points } }`);
    expect(res.body.errors).toMatchObject([{ message: '"first" must be from 1 to 100.', extensions: { code: 'BAD_USER_INPUT' } }]);
  });

  it('a date that is not one is 400 BAD_USER_INPUT before anything runs', async () => {
    const res = await t.gql('query($from: DateTime!) { usageTop(from: $from, to: "2026-03-02T00:00:00Z") { points } }', { from: 'yesterday' });
    expect(res.status).toBe(400);
    expect(res.body.errors[0].extensions.code).toBe('BAD_USER_INPUT');
  });
});
