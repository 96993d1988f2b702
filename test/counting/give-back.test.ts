import { createLimiterStore, type LimiterStore } from '../../src/counting/store';
import { hasRedis, hasRedisCluster, testClusterNodes, testRedisUrl } from '../support/services';
import { until } from '../support/wait';

// A refund gives points back to the bucket they were taken from, and a counter never goes below
// zero: a refund that arrives once that bucket counts nothing any more gives nothing to a later
// one (else an over-priced operation sent just before a bucket's end banks points for the next).
const stores: [string, () => LimiterStore][] = [['memory', () => createLimiterStore({ failureMode: 'closed' })]];
if (hasRedis()) stores.push(['redis', () => createLimiterStore({ redis: testRedisUrl(), failureMode: 'closed', commandTimeoutMs: 1000 })]);
if (hasRedisCluster()) {
  stores.push(['cluster', () => createLimiterStore({ redis: testClusterNodes().split(',').map((n) => ({ host: n.split(':')[0], port: Number(n.split(':')[1]) })), failureMode: 'closed', commandTimeoutMs: 1000 })]);
}

describe.each(stores)('giving points back on the %s store', (_name, open) => {
  let store: LimiterStore;
  beforeAll(async () => {
    store = open();
    expect(await store.ready(10_000)).toBe(true);
  });
  afterAll(() => store.close());

  const fresh = (duration: number) => store.counters({ keyPrefix: `tg:test:giveback:${process.pid}:${Math.random().toString(36).slice(2)}`, points: 10, duration });
  const takeOne = async (limiter: ReturnType<typeof fresh>, points: number) => (await store.take([{ asks: [{ limiter, key: '{k}', points }], required: true }]))[0];
  const used = async (limiter: ReturnType<typeof fresh>) => (await store.read(limiter, '{k}')).used;

  it('gives back to the same bucket, never below zero', async () => {
    const limiter = fresh(3600);
    const outcome = await takeOne(limiter, 6);
    expect(outcome.ok).toBe(true);
    const [after] = await store.giveBack([{ limiter, key: '{k}', points: 4, bucket: outcome.states[0].bucket }]);
    expect(after?.used).toBe(2);
    await store.giveBack([{ limiter, key: '{k}', points: 9, bucket: outcome.states[0].bucket }]);
    expect(await used(limiter)).toBe(0);
  });

  it('a refund that arrives after its bucket stopped counting gives nothing to a later one', async () => {
    const limiter = fresh(1);
    const taken = await takeOne(limiter, 8);
    // two buckets on, the points taken count nothing; the bucket now begins with one point
    await until(async () => (await takeOne(limiter, 0)).states[0].bucket >= taken.states[0].bucket + 2, 5000);
    const next = await takeOne(limiter, 1);
    expect(next.ok).toBe(true);
    const [after] = await store.giveBack([{ limiter, key: '{k}', points: 7, bucket: taken.states[0].bucket }]);
    expect(after).toBeNull();
    expect(next.states[0]).toMatchObject({ previous: 0, current: 1 });
    // the one point is still there, in the current bucket (or the previous one, if a bucket just ended)
    const state = await store.read(limiter, '{k}');
    expect(state.bucket === next.states[0].bucket ? state.current : state.previous).toBe(1);
  });

  it('a refund to the previous bucket lowers what it still counts, and never reaches the current one', async () => {
    const limiter = fresh(2);
    // take early in a bucket, so the next take lands in the next bucket
    await until(async () => Date.now() % 2000 < 500, 5000);
    const taken = await takeOne(limiter, 6);
    await until(async () => (await takeOne(limiter, 0)).states[0].bucket === taken.states[0].bucket + 1, 5000);
    const now = await takeOne(limiter, 2);
    expect(now.states[0]).toMatchObject({ previous: 6, current: 2 });
    const [after] = await store.giveBack([{ limiter, key: '{k}', points: 9, bucket: taken.states[0].bucket }]);
    expect(after).toMatchObject({ previous: 0, current: 2, used: 2 });
  });
});
