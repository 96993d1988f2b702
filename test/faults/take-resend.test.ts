import Redis from 'ioredis';
import { createLimiterStore } from '../../src/counting/store';
import { startTcpProxy } from '../support/tcp-proxy';
import { describeWithRedis, testRedisUrl } from '../support/services';
import { until } from '../support/wait';

// A take whose reply is lost (the connection died after the command was sent) must never be
// applied twice: ioredis resends unanswered commands after a reconnect unless told not to, and a
// take script run twice charges twice.
describeWithRedis('a take whose reply was lost', () => {
  it('is applied at most once, even after the client reconnects', async () => {
    const url = new URL(testRedisUrl());
    const proxy = await startTcpProxy({ host: url.hostname, port: Number(url.port || 6379) });
    const direct = new Redis(testRedisUrl());
    const store = createLimiterStore({ redis: `redis://127.0.0.1:${proxy.port}${url.pathname}`, failureMode: 'insurance', commandTimeoutMs: 200 });
    try {
      expect(await store.ready(5000)).toBe(true);
      const prefix = `tg:test:resend:${process.pid}:${Date.now()}`;
      const limiter = store.counters({ keyPrefix: prefix, points: 100, duration: 60 });
      const counter = limiter.getKey('k');
      proxy.dropReplies();
      // The take reaches Redis and runs; its reply never comes back: insurance answers after 200 ms.
      const [outcome] = await store.take([{ asks: [{ limiter, key: 'k', points: 7 }], required: true }]);
      expect(outcome.ok).toBe(true);
      await until(async () => (await direct.hget(counter, 'c')) === '7', 5000);
      // The connection dies; the client reconnects through the restored proxy.
      await proxy.cut();
      await proxy.restore();
      await until(async () => store.ready(100), 10_000);
      // Another take goes through on the new connection; a resent take would have run before it.
      await until(async () => (await store.take([{ asks: [{ limiter, key: 'other', points: 1 }], required: true }]))[0].ok && (await direct.hget(limiter.getKey('other'), 'c')) !== null, 10_000);
      expect(await direct.hget(counter, 'c')).toBe('7');
    } finally {
      await store.close();
      direct.disconnect();
      await proxy.close();
    }
  });
});
