import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Webhook } from 'standardwebhooks';
import { flushTestRedis, openTestDatabase, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { hasPostgres, hasRedis } from '../support/services';
import { until } from '../support/wait';
import { sql } from 'drizzle-orm';
import { webhookEvents } from '../../src/db/schema';

// Alerts (issue 26) as Standard Webhooks, against a local receiver that fails its first attempt:
// each usage threshold once (80, 90, 100) whatever the number of instances and restarts,
// signatures verified with the `standardwebhooks` package, the failed attempt retried; the key
// expiry warning once; a rotation reminder under KEY_ROTATION_DAYS.
const SECRET = `whsec_${Buffer.from('tollgate test webhook secret, 32b').toString('base64')}`;
const STATION = '{ station(id: "LHR") { name } }';

type Received = { headers: IncomingHttpHeaders; body: string; status: number };

/** A webhook receiver: answers 503 to the first request it gets, 204 to the rest. */
async function startReceiver(): Promise<{ url: string; received: Received[]; close(): Promise<void> }> {
  const received: Received[] = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (chunk) => (body += chunk));
    req.on('end', () => {
      const status = received.length === 0 ? 503 : 204;
      received.push({ headers: req.headers, body, status });
      res.writeHead(status).end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hooks`,
    received,
    close: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

const verified = (r: Received) => new Webhook(SECRET).verify(r.body, r.headers as Record<string, string>) as { type: string; timestamp: string; data: Record<string, unknown> };

describe('alerts as signed webhooks', () => {
  const store = hasRedis() ? 'redis' : 'memory';
  let db: TestDatabase;
  let receiver: Awaited<ReturnType<typeof startReceiver>>;
  let servers: TestServer[] = [];

  beforeAll(async () => {
    if (store === 'redis') await flushTestRedis();
    db = await openTestDatabase(hasPostgres() ? 'postgres' : 'pglite');
    receiver = await startReceiver();
  });
  afterAll(async () => {
    for (const s of servers) await s.close();
    await receiver?.close();
    await db?.dispose();
  });

  const env = () => ({ ALERT_WEBHOOK_URL: receiver.url, ALERT_WEBHOOK_SECRET: SECRET, KEY_CACHE_TTL_SECONDS: '600' });
  const startAll = async () => {
    servers = [await startTestServer({ database: db, store, env: env() }), ...(store === 'redis' ? [await startTestServer({ database: db, store, env: env() })] : [])];
  };
  const delivered = (type: string) => receiver.received.filter((r) => r.status === 204).map(verified).filter((e) => e.type === type);

  it('each threshold of a consumer\'s budget once — across two instances and a restart — signed, and retried after a failure', async () => {
    await startAll();
    const ok = async (query: string) => {
      const res = await servers[0].gql(query);
      expect(res.body.errors).toBeUndefined();
      return res.body.data;
    };
    const consumer = (await ok('mutation { createConsumer(input: { name: "Acme", budgets: [{ points: 10, duration: 3600 }] }) { id } }')).createConsumer;
    const { secret } = (await ok(`mutation { createApiKey(input: { name: "k", scopes: ["read"], consumerId: "${consumer.id}" }) { secret } }`)).createApiKey;

    for (let i = 0; i < 10; i++) expect((await servers[i % servers.length].gql(STATION, {}, secret)).status).toBe(200);
    // Both instances stop and start again; the budget, spent, is read again by refused calls.
    for (const s of servers) await s.close();
    await startAll();
    for (let i = 0; i < 4; i++) expect((await servers[i % servers.length].gql(STATION, {}, secret)).status).toBe(429);

    // The receiver's first answer was a 503: that event comes again (first retry within 5 s).
    await until(async () => delivered('usage.threshold').length >= 3, 20_000);
    const thresholds = delivered('usage.threshold');
    expect(thresholds.map((e) => e.data.threshold).sort()).toEqual([100, 80, 90]);
    for (const event of thresholds) {
      expect(event.data).toMatchObject({ consumerId: consumer.id, limit: 10, duration: 3600 });
      expect(event.data).not.toHaveProperty('keyId');
      expect(new Date(event.data.resetAt as string).getTime()).toBeGreaterThan(Date.now());
    }
    expect(thresholds.find((e) => e.data.threshold === 100)!.data.used).toBe(10);
    const failed = receiver.received[0];
    expect(failed.status).toBe(503);
    expect(receiver.received.filter((r) => r.headers['webhook-id'] === failed.headers['webhook-id']).map((r) => r.status)).toEqual([503, 204]);

    // A forged or altered body does not verify.
    const [sample] = receiver.received.filter((r) => r.status === 204);
    expect(() => new Webhook(SECRET).verify(sample.body.replace('"threshold"', '"Threshold"'), sample.headers as Record<string, string>)).toThrow();

    // Admins see the deliveries; the metrics count them by result.
    const list = await servers[0].gql('{ webhookDeliveries(first: 10) { edges { node { id type status attempts lastResult payload } } } }');
    expect(list.body.errors).toBeUndefined();
    const nodes = list.body.data.webhookDeliveries.edges.map((e: { node: Record<string, unknown> }) => e.node);
    expect(nodes.filter((n: { type: string; status: string }) => n.type === 'usage.threshold' && n.status === 'DELIVERED')).toHaveLength(3);
    expect(nodes.find((n: { id: string }) => n.id === failed.headers['webhook-id'])).toMatchObject({ attempts: 2, lastResult: 'HTTP 204' });
    const metrics = (await servers[0].server.metrics.render()).body + (servers[1] ? (await servers[1].server.metrics.render()).body : '');
    expect(metrics).toMatch(/tollgate_webhook_deliveries_total\{result="delivered"\} [1-9]/);

    // Nothing more arrives: no duplicate from the other instance or the restart.
    await Promise.all(servers.map((s) => s.server.tollgate.services.alerts.delivery!.poll()));
    expect(delivered('usage.threshold')).toHaveLength(3);
  }, 40_000);

  it('a key created to expire in 36 hours gets its 7-day warning within seconds, once', async () => {
    const expiresAt = new Date(Date.now() + 36 * 3_600_000).toISOString();
    const created = await servers[0].gql(`mutation { createApiKey(input: { name: "short", scopes: ["read"], expiresAt: "${expiresAt}" }) { apiKey { id expiresAt } } }`);
    expect(created.body.errors).toBeUndefined();
    const { id } = created.body.data.createApiKey.apiKey;
    await until(async () => delivered('key.expiring').some((e) => e.data.keyId === id), 15_000);
    for (const s of servers) await s.server.tollgate.services.alerts.watch!.checkKeys();
    await Promise.all(servers.map((s) => s.server.tollgate.services.alerts.delivery!.poll()));
    expect(delivered('key.expiring').filter((e) => e.data.keyId === id)).toEqual([
      expect.objectContaining({ type: 'key.expiring', data: { keyId: id, expiresAt: created.body.data.createApiKey.apiKey.expiresAt, days: 7 } }),
    ]);
  });
});

describe('thresholds as the customer meets them', () => {
  it('100 % is sent when the budget refuses, even short of its limit; an estimate that is refunded sends nothing', async () => {
    const db = await openTestDatabase('pglite');
    const receiver = await startReceiver();
    const t = await startTestServer({ database: db, env: { ALERT_WEBHOOK_URL: receiver.url, ALERT_WEBHOOK_SECRET: SECRET } });
    const watch = t.server.tollgate.services.alerts.watch!;
    const delivery = t.server.tollgate.services.alerts.delivery!;
    const thresholdsOf = (keyId: string) => receiver.received.filter((r) => r.status === 204).map(verified).filter((e) => e.type === 'usage.threshold' && e.data.keyId === keyId);
    try {
      // Three points an operation against 10: 3, 6, 9 (80 and 90 %), then refused at 9 — the wall.
      const THREE = '{ a: station(id: "LHR") { name } b: station(id: "LHR") { name } c: station(id: "LHR") { name } }';
      const walled = await t.createKey({ name: 'walled', budget: { points: 10, duration: 3600 } });
      const statuses = [];
      for (let i = 0; i < 4; i++) statuses.push((await t.gql(THREE, {}, walled.secret)).status);
      expect(statuses).toEqual([200, 200, 200, 429]);
      await watch.flush();
      await until(async () => (await delivery.poll(), thresholdsOf(walled.id).length >= 3), 20_000);
      expect(thresholdsOf(walled.id).map((e) => [e.data.threshold, e.data.used]).sort()).toEqual([[100, 9], [80, 9], [90, 9]]);

      // A list estimated at more than 80 % of the budget, refunded down to a little: no alert.
      const LIST = '{ stations(first: 50) { edges { node { id } } } }';
      const probe = (await t.gql(LIST)).body.extensions.cost;
      const budget = Math.ceil(probe.requestedQueryCost / 0.85);
      expect(probe.actualQueryCost).toBeLessThan(budget * 0.8); // the premise
      const estimated = await t.createKey({ name: 'estimated', budget: { points: budget, duration: 3600 } });
      expect((await t.gql(LIST, {}, estimated.secret)).status).toBe(200);
      await watch.flush();
      await delivery.poll();
      expect(await db.db.select().from(webhookEvents).where(sql`${webhookEvents.payload}->'data'->>'keyId' = ${estimated.id}`)).toEqual([]);
    } finally {
      await t.close();
      await receiver.close();
      await db.dispose();
    }
  }, 40_000);
});

describe('rotation due', () => {
  it('KEY_ROTATION_DAYS: a key whose secret is older gets one key.rotation_due and shows rotationDueAt; rotating starts the clock again', async () => {
    const db = await openTestDatabase('pglite');
    const receiver = await startReceiver();
    let offset = 0;
    const t = await startTestServer({ database: db, env: { ALERT_WEBHOOK_URL: receiver.url, ALERT_WEBHOOK_SECRET: SECRET, KEY_ROTATION_DAYS: '30' }, now: () => Date.now() + offset });
    try {
      const { id } = await t.createKey({ name: 'old' });
      const read = async () => (await t.gql(`{ apiKey(id: "${id}") { createdAt rotationDueAt } }`)).body.data.apiKey;
      const before = await read();
      expect(new Date(before.rotationDueAt).getTime() - new Date(before.createdAt).getTime()).toBe(30 * 86_400_000);

      offset = 31 * 86_400_000;
      const watch = t.server.tollgate.services.alerts.watch!;
      await watch.checkKeys();
      await watch.checkKeys();
      await until(async () => receiver.received.filter((r) => r.status === 204).map(verified).some((e) => e.type === 'key.rotation_due' && e.data.keyId === id), 20_000);
      const events = receiver.received.filter((r) => r.status === 204).map(verified).filter((e) => e.type === 'key.rotation_due' && e.data.keyId === id);
      expect(events).toHaveLength(1);
      expect(events[0].data).toMatchObject({ keyId: id, rotationDays: 30, rotationDueAt: before.rotationDueAt });

      const rotated = await t.gql(`mutation { rotateApiKey(id: "${id}", gracePeriodSeconds: 0) { apiKey { rotationDueAt } } }`);
      expect(rotated.body.errors).toBeUndefined();
      expect(new Date(rotated.body.data.rotateApiKey.apiKey.rotationDueAt).getTime()).toBeGreaterThan(Date.now() + 29 * 86_400_000);

      // Settled deliveries are listed for 30 days, then pruned — a reminder only once its key is
      // rotated (the admin key, never rotated here, keeps its reminder: it stays once).
      const listed = async () => (await t.gql('{ webhookDeliveries(first: 100) { edges { node { id type } } } }')).body.data.webhookDeliveries.edges.map((e: { node: { id: string } }) => e.node.id);
      const reminderOf = (keyId: string) => receiver.received.find((r) => r.status === 204 && verified(r).type === 'key.rotation_due' && verified(r).data.keyId === keyId)?.headers['webhook-id'];
      const adminId = (await t.gql('{ me { id } }')).body.data.me.id;
      await until(async () => !!reminderOf(adminId), 20_000); // the receiver's first answer (a 503) may have been its
      const sent = reminderOf(id);
      const adminReminder = reminderOf(adminId);
      expect(await listed()).toEqual(expect.arrayContaining([sent, adminReminder]));
      offset += 29 * 86_400_000;
      await t.server.tollgate.services.alerts.delivery!.poll();
      expect(await listed()).toContain(sent);
      offset += 2 * 86_400_000;
      await t.server.tollgate.services.alerts.delivery!.poll();
      expect(await listed()).not.toContain(sent);
      expect(await listed()).toContain(adminReminder);
      await t.server.tollgate.services.alerts.watch!.checkKeys();
      await t.server.tollgate.services.alerts.delivery!.poll();
      expect(receiver.received.filter((r) => r.status === 204 && verified(r).data.keyId === adminId)).toHaveLength(1);
    } finally {
      await t.close();
      await receiver.close();
      await db.dispose();
    }
  }, 40_000);
});

describe('without ALERT_WEBHOOK_URL', () => {
  it('nothing is sent and nothing is queued: a spent budget and an expiring key leave the outbox empty', async () => {
    const db = await openTestDatabase('pglite');
    const t = await startTestServer({ database: db });
    try {
      expect(t.server.tollgate.services.alerts.watch).toBeNull();
      const { secret } = await t.createKey({ budget: { points: 3, duration: 3600 } });
      expect([await t.gql(STATION, {}, secret), await t.gql(STATION, {}, secret), await t.gql(STATION, {}, secret), await t.gql(STATION, {}, secret)].map((r) => r.status)).toEqual([200, 200, 200, 429]);
      const expiresAt = new Date(Date.now() + 3_600_000).toISOString();
      expect((await t.gql(`mutation { createApiKey(input: { name: "soon", scopes: ["read"], expiresAt: "${expiresAt}" }) { secret } }`)).body.errors).toBeUndefined();
      await new Promise((resolve) => setTimeout(resolve, 700)); // past the 500 ms a key change would wait
      expect(await db.db.select().from(webhookEvents)).toEqual([]);
      expect((await t.gql('{ webhookDeliveries { edges { node { id } } } }')).body.data.webhookDeliveries.edges).toEqual([]);
      // A cursor this list never gave is bad input, whatever it holds.
      for (const after of ['nonsense', Buffer.from('99999999999999999|x').toString('base64url'), Buffer.from('1e400|x').toString('base64url')]) {
        const res = await t.gql('query($after: String) { webhookDeliveries(after: $after) { edges { node { id } } } }', { after });
        expect(res.body.errors).toMatchObject([{ extensions: { code: 'BAD_USER_INPUT' } }]);
      }
    } finally {
      await t.close();
      await db.dispose();
    }
  });
});
