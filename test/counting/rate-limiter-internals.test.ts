import { RateLimiterMemory, RateLimiterRedis } from 'rate-limiter-flexible';

// Tollgate's take reads and writes rate-limiter-flexible's memory counters directly, and watches
// two private methods of its Redis limiter (src/counting/take.ts, store.ts). The version is pinned
// exactly; this fails on an upgrade that changes what Tollgate relies on, before it miscounts.
describe('the rate-limiter-flexible internals Tollgate relies on', () => {
  it('is the pinned version', () => {
    expect(require('rate-limiter-flexible/package.json').version).toBe(require('../../package.json').dependencies['rate-limiter-flexible']);
  });

  it('keeps memory counters as { value, expiresAt } records in _memoryStorage._storage, written by incrby', () => {
    const limiter = new RateLimiterMemory({ keyPrefix: 'internals', points: 10, duration: 60 });
    const storage = (limiter as unknown as { _memoryStorage: { _storage: Map<string, { value: number; expiresAt: number | null }>; incrby(key: string, points: number, duration: number): unknown } })._memoryStorage;
    expect(storage._storage).toBeInstanceOf(Map);
    const before = Date.now();
    storage.incrby(limiter.getKey('k'), 3, 60);
    const record = storage._storage.get(limiter.getKey('k'));
    expect(record?.value).toBe(3);
    expect(record?.expiresAt).toBeGreaterThanOrEqual(before + 60_000);
    expect(record?.expiresAt).toBeLessThanOrEqual(Date.now() + 60_000);
  });

  it('reads and writes Redis counters through _get and _upsert', () => {
    const proto = RateLimiterRedis.prototype as unknown as Record<string, unknown>;
    expect(typeof proto._get).toBe('function');
    expect(typeof proto._upsert).toBe('function');
  });
});
