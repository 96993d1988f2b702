import { createLimiterStore, type LimiterStore } from '../../src/counting/store';
import { hasRedis, hasRedisCluster, testClusterNodes, testRedisUrl } from '../support/services';
import { until } from '../support/wait';

// A refund gives points back to the window they were taken from, and a counter never goes below
// zero: a refund that arrives after its window ended gives nothing to the next one (else an
// over-priced operation sent just before a reset banks points for the next window).
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

  const fresh = (duration: number) => store.limiter({ keyPrefix: `tg:test:giveback:${process.pid}:${Math.random().toString(36).slice(2)}`, points: 10, duration });
  const takeOne = async (limiter: ReturnType<typeof fresh>, points: number) => {
    const [outcome] = await store.take([{ asks: [{ limiter, key: '{k}', points }], required: true }]);
    return { outcome, expiresAt: Date.now() + outcome.states[0].msBeforeNext };
  };
  const used = async (limiter: ReturnType<typeof fresh>) => (await limiter.get('{k}'))?.consumedPoints ?? 0;

  it('gives back to the same window, never below zero', async () => {
    const limiter = fresh(60);
    const { outcome, expiresAt } = await takeOne(limiter, 6);
    expect(outcome.ok).toBe(true);
    const [after] = await store.giveBack([{ limiter, key: '{k}', points: 4, expiresAt }]);
    expect(after?.used).toBe(2);
    await store.giveBack([{ limiter, key: '{k}', points: 9, expiresAt }]);
    expect(await used(limiter)).toBe(0);
  });

  it('a refund that arrives after its window ended gives nothing to the next window', async () => {
    const limiter = fresh(1);
    const { expiresAt } = await takeOne(limiter, 8);
    // the window ends; the next one begins with one point
    await until(async () => (await takeOne(limiter, 0)).outcome.states[0].used === 0, 5000);
    const next = await takeOne(limiter, 1);
    expect(next.outcome.ok).toBe(true);
    const [after] = await store.giveBack([{ limiter, key: '{k}', points: 7, expiresAt }]);
    expect(after).toBeNull();
    expect(await used(limiter)).toBe(1);
    // and the next window still holds exactly 10 − 1
    const rest = await takeOne(limiter, 9);
    expect(rest.outcome.ok).toBe(true);
    expect((await takeOne(limiter, 1)).outcome.ok).toBe(false);
  });
});
