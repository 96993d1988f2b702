import { MemoryCounters, msUntilFits, usedOf } from '../../src/counting/sliding-window';
import { flushTestRedis, openTestDatabase, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { hasRedisCluster, storeBackends } from '../support/services';
import { until } from '../support/wait';

// Windows slide (issue 23): a client that spends a field's whole window just before its edge and
// again just after it — the edge it can read from resetAt — must not get twice the limit. With
// fixed windows it did (a field at 10 per 2 s admitted 20 within 0.3 s); with the weighted
// two-bucket counter the points spent before the edge fade out over the next window, so within
// a span T after spending the limit, at most limit × T / window more are admitted.
const STATION = '{ station(id: "LHR") { name } }';
const USAGE = 'query($id: ID!) { apiKey(id: $id) { usage { coordinate remaining resetAt } } }';
const LIMIT = 10;
const WINDOW_S = 4;

const stores: ('memory' | 'redis' | 'cluster')[] = [...storeBackends(), ...(hasRedisCluster() ? ['cluster' as const] : [])];
const sleepUntil = (at: number) => new Promise((r) => setTimeout(r, Math.max(0, at - Date.now())));

describe.each(stores)('a sliding window on the %s store', (store) => {
  let db: TestDatabase;
  let t: TestServer;

  beforeAll(async () => {
    if (store === 'redis') await flushTestRedis();
    db = await openTestDatabase('pglite');
    t = await startTestServer({ database: db, store });
    if (store === 'cluster') await until(async () => ((await (await fetch(`${t.url}/ready`)).json()) as { limiterStore: string }).limiterStore === 'up', 10_000);
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });

  const admittedOf = (answers: { body: { data?: { station: unknown } } }[]) => answers.filter((a) => a.body.data?.station).length;
  const burst = async (secret: string, n: number) => admittedOf(await Promise.all(Array.from({ length: n }, () => t.gql(STATION, {}, secret))));

  it(`spending ${LIMIT} just before the window's edge and again just after admits only what has faded, not ${2 * LIMIT}`, async () => {
    const key = await t.createKey({ scopes: ['read'], limits: [{ coordinate: 'Query.station', limit: LIMIT, duration: WINDOW_S }] });
    // One call, then the edge as the server discloses it (resetAt), with room to spend before it.
    let edge = 0;
    await until(async () => {
      expect(await burst(key.secret, 1)).toBe(1);
      const usage = (await t.gql(USAGE, { id: key.id })).body.data.apiKey.usage;
      edge = Date.parse(usage.find((u: { coordinate: string }) => u.coordinate === 'Query.station').resetAt);
      return edge - Date.now() > 600;
    }, 3 * WINDOW_S * 1000);
    // The rest of the window, just before the edge: whatever is left of the limit.
    await sleepUntil(edge - 300);
    const before = await burst(key.secret, 2 * LIMIT);
    const spentBefore = before + 1;
    // Just after the edge, the client tries the whole limit again.
    await sleepUntil(edge + 50);
    const after = await burst(key.secret, LIMIT);
    const elapsed = Date.now() - edge;
    // What spent before the edge still counts, weighted by how much of it lies within one window:
    // both bursts together get at most the limit and what faded since the edge. (Counted together:
    // on a loaded machine the first burst can run past the edge, and what it spends there counts
    // in full in the new bucket. Fixed windows admit 2 × LIMIT here.)
    expect(spentBefore + after).toBeLessThanOrEqual(LIMIT + Math.ceil((LIMIT * elapsed) / (WINDOW_S * 1000)));
    expect(after).toBeLessThan(LIMIT);
  });

  it('a refused client that waits Retry-After is admitted: the wait is how long until the call fits', async () => {
    const key = await t.createKey({ scopes: ['read'], limits: [{ coordinate: 'Query.station', limit: 2, duration: 2 }] });
    await burst(key.secret, 3);
    const refused = await t.gql(STATION, {}, key.secret);
    const ext = refused.body.errors[0].extensions;
    expect(ext.code).toBe('RATE_LIMITED');
    expect(ext.retryAfter).toBeGreaterThanOrEqual(1);
    expect(ext.retryAfter).toBeLessThanOrEqual(4); // at most the rest of this bucket and the next
    await new Promise((r) => setTimeout(r, ext.retryAfter * 1000));
    expect(await burst(key.secret, 1)).toBe(1);
  });
});

describe('the weighted two-bucket arithmetic', () => {
  it('counts the previous bucket by the share of it still within one window, rounded up', () => {
    expect(usedOf(10, 0, 60_000, 60_000)).toBe(10);
    expect(usedOf(10, 0, 30_000, 60_000)).toBe(5);
    expect(usedOf(10, 0, 29_999, 60_000)).toBe(5); // 4.9998 → 5: never under-counts
    expect(usedOf(10, 3, 1, 60_000)).toBe(4);
    expect(usedOf(0, 3, 60_000, 60_000)).toBe(3);
  });

  it('tells how long until points fit', () => {
    // 10 in the previous bucket, 0 now, 30 s left of a 60 s bucket: 5 held; 8 of 10 fit once 2 more fade (12 s)
    expect(msUntilFits({ bucket: 1, previous: 10, current: 0, msLeft: 30_000 }, 8, 10, 60_000)).toBe(18_000);
    expect(msUntilFits({ bucket: 1, previous: 10, current: 0, msLeft: 30_000 }, 5, 10, 60_000)).toBe(0);
    // the current bucket alone is over: the rest of this bucket, then its points fade
    expect(msUntilFits({ bucket: 1, previous: 0, current: 10, msLeft: 1_000 }, 1, 10, 60_000)).toBe(1_000 + 6_000);
    // more than the limit never fits: a whole window more, not a loop
    expect(msUntilFits({ bucket: 1, previous: 0, current: 0, msLeft: 1_000 }, 11, 10, 60_000)).toBe(61_000);
  });

  it('gives back only to the bucket the points came from, never below zero', () => {
    const counters = new MemoryCounters();
    const ms = 1000;
    const at = (t: number) => counters.read('k', ms, t);
    counters.add('k', ms, at(10_100), 6); // bucket 10
    expect(counters.giveBack('k', ms, 10, 4, 10_200)).toMatchObject({ current: 2 });
    expect(counters.giveBack('k', ms, 10, 9, 10_300)).toMatchObject({ current: 0 });
    counters.add('k', ms, at(10_400), 5);
    // bucket 11: the points of bucket 10 are the previous bucket's now, and only those get a refund
    counters.add('k', ms, at(11_100), 3);
    expect(counters.giveBack('k', ms, 10, 9, 11_200)).toMatchObject({ previous: 0, current: 3 });
    // two buckets on, bucket 10 counts nothing: a refund to it is dropped, not banked
    expect(counters.giveBack('k', ms, 10, 1, 12_100)).toBeNull();
    expect(at(12_100)).toMatchObject({ previous: 3, current: 0 });
  });
});
