import { createLimiterStore } from '../../src/counting/store';
import { CLOSED_PORT } from '../support/private-redis';

// While Redis is down, insurance decides in each instance's memory. With N instances that is N
// times the limit, unless the instances each take their share: LIMITS_INSTANCE_COUNT.
describe('insurance while Redis is down', () => {
  it.each([
    [1, 100],
    [4, 25],
  ])('with %i instance(s) configured, one instance admits %i of a 100-point window', async (instances, admitted) => {
    const store = createLimiterStore({ redis: `redis://127.0.0.1:${CLOSED_PORT}`, failureMode: 'insurance', commandTimeoutMs: 100, instanceCount: instances });
    try {
      const limiter = store.counters({ keyPrefix: `tg:test:insurance:${instances}`, points: 100, duration: 60 });
      const outcomes = [];
      for (let i = 0; i < 101; i++) outcomes.push((await store.take([{ asks: [{ limiter, key: 'k', points: 1 }], required: true }]))[0].ok);
      expect(outcomes.filter(Boolean)).toHaveLength(admitted);
      expect(outcomes[admitted - 1]).toBe(true);
      expect(outcomes[admitted]).toBe(false);
    } finally {
      await store.close();
    }
  });
});

describe('closing a store whose Redis never answered', () => {
  // ioredis's disconnect arms a 2 s timer for a socket that is already gone: with its default,
  // a closed store kept the process (a jest worker, a CLI) alive for 2 s after close().
  it('leaves no timer keeping the process alive beyond a moment, closed once or twice', async () => {
    const timers = () => process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length;
    const before = timers();
    const store = createLimiterStore({ redis: `redis://127.0.0.1:${CLOSED_PORT}`, failureMode: 'insurance', commandTimeoutMs: 100 });
    const limiter = store.counters({ keyPrefix: 'tg:test:closing', points: 10, duration: 60 });
    await store.take([{ asks: [{ limiter, key: 'k', points: 1 }], required: true }]);
    await store.close();
    await store.close();
    // What close leaves is the bounded wait for the socket (disconnectTimeout), nothing longer:
    // gone once it has run.
    await new Promise((r) => setTimeout(r, 300));
    expect(timers()).toBeLessThanOrEqual(before);
  });
});
