import { startTestServer, openTestDatabase, type TestDatabase, type TestServer } from '../support/harness';
import { startPrivateRedis } from '../support/private-redis';
import { describeIf, hasRedisServerBinary } from '../support/services';
import { timed, until } from '../support/wait';

// A Redis of the test's own, killed and frozen (SIGSTOP) under a running server. What must hold:
// no request waits unbounded, the configured store-failure mode applies, nothing answers a bare
// 500 or an internal message, /ready tells the truth, and each outage is logged once.
const TIMEOUT_MS = 200;
const STATION = '{ station(id: "LHR") { name } }';



const ready = async (t: TestServer) => {
  const res = await fetch(`${t.url}/ready`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};

const outageLines = (t: TestServer) => t.logs.map((l) => JSON.parse(l)).filter((l) => /limiter store \(Redis\)/.test(l.msg));

describeIf(hasRedisServerBinary(), 'redis-server binary', 'a Redis of the test\'s own, killed and frozen under a running server', () => {
  let redis: Awaited<ReturnType<typeof startPrivateRedis>>;
  let db: TestDatabase;
  beforeAll(async () => {
    redis = await startPrivateRedis();
    db = await openTestDatabase('pglite');
  });
  afterAll(async () => {
    await redis?.stop();
    await db?.dispose();
  });

  const serve = (mode: string) => startTestServer({ database: db, env: { REDIS_URL: redis.url, LIMITS_ON_STORE_FAILURE: mode, LIMITER_TIMEOUT_MS: String(TIMEOUT_MS) } });

  it('closed mode, Redis killed: a verified key and a new key both get a coded 503 with Retry-After; back to 200 once Redis returns', async () => {
    const t = await serve('closed');
    try {
      const fresh = await t.createKey();
      expect((await t.gql(STATION)).status).toBe(200); // the admin key is now verified here
      await redis.kill();
      for (const key of [t.adminKey, fresh.secret]) {
        const res = await t.gql(STATION, {}, key);
        expect(res.status).toBe(503);
        expect(res.headers.get('retry-after')).toMatch(/^\d+$/);
        expect(res.body.errors.map((e: any) => e.extensions.code)).toEqual(['SERVICE_UNAVAILABLE']);
        expect(JSON.stringify(res.body)).not.toMatch(/TypeError|iterable|ECONNREFUSED|Stream|writeable|stack/i);
      }
      expect(await ready(t)).toEqual({ status: 503, body: expect.objectContaining({ status: 'unavailable', limiterStore: 'down' }) });
      await redis.restart();
      await until(async () => (await t.gql(STATION)).status === 200);
      expect((await ready(t)).status).toBe(200);
    } finally {
      await t.close();
    }
  });

  it('insurance mode, Redis killed: an admin reading a consumer\'s windows is told the store did not answer (503), not "nothing used"', async () => {
    const t = await serve('insurance');
    try {
      const created = await t.gql('mutation { createConsumer(input: { name: "windows while down", budgets: [{ points: 5, duration: 3600 }] }) { id } }');
      const id = created.body.data.createConsumer.id;
      const read = () => t.gql('query($id: ID!) { consumer(id: $id) { windows { limit used remaining } } }', { id });
      expect((await read()).body.data.consumer.windows).toEqual([{ limit: 5, used: 0, remaining: 5 }]);
      await redis.kill();
      const down = await read();
      expect(down.status).toBe(503);
      expect(down.body.errors.map((e: any) => e.extensions.code)).toEqual(['SERVICE_UNAVAILABLE']);
      expect(JSON.stringify(down.body)).not.toContain('"remaining":5');
      await redis.restart();
      await until(async () => (await read()).status === 200);
    } finally {
      await t.close();
    }
  });

  it.each([
    ['insurance', 200],
    ['open', 200],
    ['closed', 503],
  ])('%s mode, Redis frozen (SIGSTOP): every request answers within a bound, with %i', async (mode, status) => {
    const t = await serve(mode);
    try {
      expect((await t.gql(STATION)).status).toBe(200);
      redis.freeze();
      try {
        const answers = await Promise.all(Array.from({ length: 10 }, () => timed(() => t.gql(STATION))));
        for (const { value, ms } of answers) {
          expect(value.status).toBe(status);
          if (status === 503) expect(value.body.errors[0].extensions.code).toBe('SERVICE_UNAVAILABLE');
          expect(ms).toBeLessThan(5_000); // bounded by the limiter timeout, never by the freeze
        }
        // Every failed command is counted, even where insurance or open mode answered for it.
        const metrics = await (await fetch(`${t.url}/metrics`)).text();
        const failures = metrics.split('\n').filter((l) => l.startsWith('tollgate_limiter_store_failures_total{')).reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
        expect(failures).toBeGreaterThanOrEqual(10);
        const probe = await timed(() => ready(t));
        expect(probe.ms).toBeLessThan(5_000);
        // Serving on insurance/open is degraded, not unready: a load balancer must keep the instance.
        expect(probe.value.status).toBe(mode === 'closed' ? 503 : 200);
        expect(probe.value.body).toMatchObject({ limiterStore: 'down', status: mode === 'closed' ? 'unavailable' : 'degraded' });
      } finally {
        redis.thaw();
      }
      await until(async () => (await ready(t)).body.limiterStore === 'up');
      expect((await t.gql(STATION)).status).toBe(200);
      await until(() => outageLines(t).length >= 2);
      const lines = outageLines(t);
      // Once when it starts, with the real cause; once when it ends.
      expect(lines.map((l) => l.msg)).toEqual(['limiter store (Redis) unreachable', 'limiter store (Redis) reachable again']);
      expect(lines[0].err.message).toMatch(/timed out/i);
    } finally {
      await t.close();
    }
  });
});
