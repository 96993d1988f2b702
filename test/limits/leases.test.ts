import { randomUUID } from 'node:crypto';
import { keyTag } from '../../src/gates/field-gate';
import { Leases } from '../../src/counting/lease';
import { createLimiterStore, type LimiterStore } from '../../src/counting/store';
import type { Group } from '../../src/counting/take';
import { describeWithRedis, testRedisUrl } from '../support/services';
import { flushTestRedis, openTestDatabase, startTestServer } from '../support/harness';
import { until } from '../support/wait';

describe('lease bookkeeping', () => {
  it('asks a slice ahead once while a call is in flight: a lease never holds more than one slice', () => {
    const leases = new Leases(10);
    const limiter = { points: 100 } as never;
    expect(leases.want('c', 100, 1000)).toBe(10);
    expect(leases.want('c', 100, 1000)).toBe(0); // a second call while the first is out
    leases.update(limiter, 'c', 100, 10, 11, 60_000, 7, 10, 1000);
    expect(leases.want('c', 100, 1000)).toBe(0); // the lease is full
    leases.answered('c', 0);
    expect(leases.want('other', 100, 1000)).toBe(10);
    leases.answered('other', 10); // that call failed: the next may ask again
    expect(leases.want('other', 100, 1000)).toBe(10);
  });
});

// LIMITS_LEASE_PERCENT (src/counting/lease.ts): an instance takes a slice of a window ahead of need
// from Redis and spends it locally. These tests hold it to its stated bound: never more than the
// limit on any number of instances, exact on one, at most one slice per other instance refused
// early, and no lease outliving its window.
describeWithRedis('leases: a slice of a window spent without a round trip', () => {
  beforeAll(() => flushTestRedis());
  const stores: LimiterStore[] = [];
  afterAll(() => Promise.all(stores.map((s) => s.close())));

  async function instance(leasePercent: number) {
    const store = createLimiterStore({ redis: testRedisUrl(), failureMode: 'insurance', leasePercent });
    stores.push(store);
    await store.ready();
    let calls = 0;
    const client = store.redis! as unknown as { sendCommand(command: { name: string }): unknown };
    const original = client.sendCommand.bind(client);
    client.sendCommand = (command) => (command.name === 'evalsha' && calls++, original(command));
    return { store, calls: () => calls };
  }
  /**
   * One window: `limit` points per `duration` seconds, under a prefix of this test's own. An hour
   * by default: a minute's bucket can end mid-test, and what it held then starts to fade.
   */
  const windowOf = (store: LimiterStore, prefix: string, limit: number, duration = 3600) => store.counters({ keyPrefix: prefix, points: limit, duration });
  const one = (store: LimiterStore, prefix: string, limit: number, duration?: number): Group[] => [{ asks: [{ limiter: windowOf(store, prefix, limit, duration), key: 'k', points: 1 }], required: true }];
  const admitted = (outcomes: { ok: boolean }[][]) => outcomes.filter(([o]) => o.ok).length;
  /** The points Redis holds in the counter's current bucket (leased ones included). */
  const inRedis = async (store: LimiterStore, prefix: string) => Number(await store.redis!.hget(`${prefix}:k`, 'c'));

  it('one instance stays exact: of 1 200 takes against 1 000, the 1 000th passes and the 1 001st is refused — in a third of the round trips', async () => {
    const { store, calls } = await instance(1); // a slice of 10 points
    const prefix = `lease-one-${randomUUID()}`;
    const outcomes = [];
    // Waves of 5 concurrent takes (one event-loop turn's worth, each wave one batch).
    for (let wave = 0; wave < 240; wave++) outcomes.push(...(await Promise.all(Array.from({ length: 5 }, () => store.take(one(store, prefix, 1000))))));
    expect(outcomes.slice(0, 1000).every(([o]) => o.ok)).toBe(true);
    expect(outcomes.slice(1000).some(([o]) => o.ok)).toBe(false);
    expect(outcomes[999][0].states[0].used).toBe(1000);
    expect(await inRedis(store, prefix)).toBe(1000);
    // Without leases every wave is one call (240). With them a call takes its wave and tops the
    // lease up to 10, which serves the next two waves: one call per three waves while points last
    // (67), then one per wave to be refused (40).
    expect(calls()).toBeLessThanOrEqual(110);
  });

  it('one instance stays exact with takes of many points: a take larger than the lease can use the lease and what Redis has left together', async () => {
    const { store } = await instance(10); // 10-point slices of 100
    const prefix = `lease-points-${randomUUID()}`;
    const take = (points: number) => store.take([{ asks: [{ limiter: windowOf(store, prefix, 100), key: 'k', points }], required: true }]);
    expect((await take(1))[0].ok).toBe(true);
    expect(await inRedis(store, prefix)).toBe(11); // 1 spent, 10 leased
    // 95 more: more than the lease holds, and more than Redis has left beside it (89); together they fit.
    const [big] = await take(95);
    expect(big).toMatchObject({ ok: true, states: [{ used: 96 }] });
    expect(await inRedis(store, prefix)).toBe(100); // 96 spent and a 4-point lease: all that was left
    expect((await take(4))[0]).toMatchObject({ ok: true, states: [{ used: 100 }] });
    expect((await take(1))[0].ok).toBe(false);
    expect(await inRedis(store, prefix)).toBe(100);
  });

  it('two instances never admit more than the limit, and refuse early by at most one slice', async () => {
    const a = await instance(5); // a slice of 50 points of 1 000
    const b = await instance(5);
    const prefix = `lease-two-${randomUUID()}`;
    const outcomes = [];
    for (let wave = 0; wave < 24; wave++) {
      outcomes.push(...(await Promise.all(Array.from({ length: 50 }, (_, i) => (i % 2 ? a : b).store.take(one((i % 2 ? a : b).store, prefix, 1000))))));
    }
    const n = admitted(outcomes);
    expect(n).toBeLessThanOrEqual(1000);
    expect(n).toBeGreaterThanOrEqual(1000 - 50);
    expect(await inRedis(a.store, prefix)).toBeLessThanOrEqual(1000);
  });

  it('a lease dies with its bucket: once the counter is gone the next take is asked of Redis and counted from zero', async () => {
    // A 3-second window, and no fixed sleep: buckets are aligned to the epoch, so the first take
    // waits for a bucket's first second; the second only has to follow it within that bucket,
    // and the third waits for both ends — Redis's (the counter expired, two buckets on) and the
    // lease's (at most 3 s after the first answer).
    const { store, calls } = await instance(10); // 10 points of 100, in a 3-second window
    const prefix = `lease-window-${randomUUID()}`;
    await until(async () => Date.now() % 3000 < 1000, 5000);
    expect(admitted([await store.take(one(store, prefix, 100, 3))])).toBe(1);
    const leaseEndsBy = Date.now() + 3_000;
    expect(await inRedis(store, prefix)).toBe(11); // the take's point and a 10-point lease
    await store.take(one(store, prefix, 100, 3));
    expect(calls()).toBe(1); // the second came out of the lease
    await until(async () => Date.now() > leaseEndsBy && (await store.redis!.exists(`${prefix}:k`)) === 0, 15_000);
    const [[after]] = [await store.take(one(store, prefix, 100, 3))];
    expect(calls()).toBe(2);
    expect(after.states[0].used).toBe(1);
    expect(await inRedis(store, prefix)).toBe(11);
  });

  it('a graceful stop gives unspent leased points back', async () => {
    const { store } = await instance(10);
    const prefix = `lease-stop-${randomUUID()}`;
    await store.take(one(store, prefix, 100));
    await store.take(one(store, prefix, 100));
    expect(await inRedis(store, prefix)).toBe(11); // 2 spent, 9 still leased
    const reader = createLimiterStore({ redis: testRedisUrl(), failureMode: 'insurance' });
    stores.push(reader);
    await reader.ready();
    await store.close();
    expect(await inRedis(reader, prefix)).toBe(2);
  });

  it('is off for a limit too small to slice: a 50-point window is exact and every take goes to Redis', async () => {
    const { store, calls } = await instance(1); // 1 % of 50 is no whole point
    const prefix = `lease-small-${randomUUID()}`;
    const outcomes = [];
    for (let i = 0; i < 60; i++) outcomes.push(await store.take(one(store, prefix, 50)));
    expect(admitted(outcomes)).toBe(50);
    expect(calls()).toBe(60);
  });

  it('decides a request locally only when every counter it asks is leased: all or nothing still holds', async () => {
    const { store, calls } = await instance(10);
    const prefix = `lease-group-${randomUUID()}`;
    const big = windowOf(store, `${prefix}-big`, 100); // leased: 10 points
    const small = windowOf(store, `${prefix}-small`, 3); // too small to lease
    const both: Group[] = [{ asks: [{ limiter: big, key: 'k', points: 1 }, { limiter: small, key: 'k', points: 1 }], required: true }];
    const outcomes = [];
    for (let i = 0; i < 5; i++) outcomes.push(await store.take(both));
    expect(outcomes.map(([o]) => o.ok)).toEqual([true, true, true, false, false]);
    expect(calls()).toBe(5); // the small window sends each one to Redis
    // The refused takes took nothing from the big window: 3 spent, the rest of its lease still there.
    const [[alone]] = [await store.take([{ asks: [{ limiter: big, key: 'k', points: 1 }], required: true }])];
    expect(alone).toMatchObject({ ok: true, states: [{ used: 4 }] });
    expect(calls()).toBe(5);
  });

  it('on the server: a known key\'s requests are decided without Redis while leases last, and the budget it reports is exact', async () => {
    const db = await openTestDatabase('pglite');
    const t = await startTestServer({ database: db, store: 'redis', env: { LIMITS_LEASE_PERCENT: '10' } });
    try {
      const key = await t.createKey({ budget: { points: 100, duration: 60 } }); // 10-point slices
      const query = '{ station(id: "LHR") { name } }';
      // Minute windows, whose buckets end on the minute: a lease dies with its bucket, and the
      // counts below belong to one bucket. Begun in a minute's first 40 s, the test has 20 s.
      await until(() => Date.now() % 60_000 < 40_000, 25_000);
      expect((await t.gql(query, {}, key.secret)).status).toBe(200); // first sight: looked up, cached
      const before = t.server.store.commands();
      const remaining: number[] = [];
      for (let i = 0; i < 5; i++) {
        const res = await t.gql(query, {}, key.secret);
        expect(res.status).toBe(200);
        remaining.push(Number(/r=(\d+)/.exec(res.headers.get('ratelimit')!)![1]));
      }
      expect(remaining).toEqual([98, 97, 96, 95, 94]);
      // The key's first request took the leases (its IP, its budget, the field's window); these
      // five were decided in process, without one Redis command.
      expect(t.server.store.commands() - before).toBe(0);
      // Redis counts the leased points as used; what the key is told leaves out the unspent ones.
      const status = await t.gql('{ rateLimit { used remaining } }', {}, key.secret);
      expect(status.body.data.rateLimit).toEqual({ used: 6, remaining: 94 });
      expect(Number(await t.server.store.redis!.hget(`tg:budget:60s:${keyTag(key.id)}`, 'c'))).toBe(11);
      // The same for a field's window read back from Redis (Query.station: 300 a minute, 30-point slices).
      const usage = await t.gql('query($id: ID!) { apiKey(id: $id) { usage { coordinate remaining } } }', { id: key.id });
      expect(usage.body.data.apiKey.usage).toContainEqual({ coordinate: 'Query.station', remaining: 294 });
      expect(Number(await t.server.store.redis!.hget(`tg:field:60s:${keyTag(key.id)}:Query.station`, 'c'))).toBe(31);
    } finally {
      await t.close();
      await db.dispose();
    }
  }, 60_000); // up to 20 s waiting for the start of a minute
});
