import { generateKey } from '../../src/keys/format';
import { flushTestRedis, openTestDatabase, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { storeBackends } from '../support/services';

// An attack, as the operator reads it afterwards from the access log alone: who (the client's
// address as the IP gate saw it, its user agent), which gate refused each request, and — for
// each 401 — why, without a single character of any key that was tried.
describe.each(storeBackends())('the access log traces a brute-force attempt (%s store)', (store) => {
  let db: TestDatabase;
  let t: TestServer;
  let clock = Date.now();

  beforeAll(async () => {
    if (store === 'redis') await flushTestRedis();
    db = await openTestDatabase('pglite');
    // Seven failed authentications block the address; 12 requests a minute per address.
    t = await startTestServer({
      database: db,
      store,
      env: { TRUST_PROXY: 'true', IP_LIMIT: '12', AUTH_FAILURE_LIMIT: '7', AUTH_FAILURE_WINDOW_SECONDS: '600', AUTH_FAILURE_BLOCK_SECONDS: '900', LAST_USED_FLUSH_SECONDS: '3600' },
      now: () => clock,
    });
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });

  it('names the client IP, the user agent, the refusing gate and each 401 reason, and never a key', async () => {
    const attacker = '203.0.113.66';
    const userAgent = `brute/1.0 ${'x'.repeat(300)}`;
    const as = (ip: string) => ({ 'x-forwarded-for': ip, 'user-agent': userAgent });
    const Q = '{ __typename }';

    const revoked = await t.createKey({ name: 'revoked' });
    expect((await t.server.keys.revoke(revoked.id, null)).ok).toBe(true);
    const expiring = await t.server.keys.create({ name: 'expiring', scopes: ['read'], expiresAt: new Date(clock + 3_600_000) }, null);
    if (!expiring.ok) throw new Error(expiring.message);
    const restricted = await t.server.keys.create({ name: 'office only', scopes: ['read'], allowedIps: ['10.0.0.0/8'] }, null);
    if (!restricted.ok) throw new Error(restricted.message);
    const wrong = [generateKey('tg'), generateKey('tg'), generateKey('tg')];
    const malformed = 'tg_this-is-not-a-key-at-all';
    const tried = [...wrong, malformed, revoked.secret, expiring.value.secret, restricted.value.secret, t.adminKey];

    const statuses: number[] = [];
    for (const key of wrong) statuses.push((await t.gql(Q, {}, key, as(attacker))).status);
    statuses.push((await t.gql(Q, {}, malformed, as(attacker))).status);
    statuses.push((await t.gql(Q, {}, null, as(attacker))).status);
    statuses.push((await t.gql(Q, {}, revoked.secret, as(attacker))).status);
    clock += 2 * 3_600_000; // the expiring key's hour is over
    statuses.push((await t.gql(Q, {}, expiring.value.secret, as(attacker))).status);
    statuses.push((await t.gql(Q, {}, restricted.value.secret, as(attacker))).status);
    // Seven failures (a missing key is not one): the address is blocked, even with a right key.
    const blocked = await t.gql(Q, {}, t.adminKey, as(attacker));
    statuses.push(blocked.status);
    expect(statuses).toEqual([401, 401, 401, 401, 401, 401, 401, 401, 429]);
    expect(blocked.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', gate: 'auth-failures' });

    // Another address, a right key, too many requests: the IP gate.
    const flooder = '198.51.100.23';
    let last = await t.gql(Q, {}, t.adminKey, as(flooder));
    for (let i = 0; i < 12 && last.status === 200; i++) last = await t.gql(Q, {}, t.adminKey, as(flooder));
    expect(last.status).toBe(429);
    expect(last.body.errors[0].extensions).toMatchObject({ gate: 'ip' });

    const lines = t.logs.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request');
    const fromAttacker = lines.filter((l) => l.ip === attacker);
    expect(fromAttacker.map((l) => [l.status, l.gates, l.reason])).toEqual([
      [401, ['key'], 'unknown'],
      [401, ['key'], 'unknown'],
      [401, ['key'], 'unknown'],
      [401, ['key'], 'malformed'],
      [401, ['key'], 'missing'],
      [401, ['key'], 'revoked'],
      [401, ['key'], 'expired'],
      [401, ['key'], 'restricted'],
      [429, ['auth-failures'], undefined],
    ]);
    for (const line of fromAttacker) {
      expect(line.userAgent).toHaveLength(200);
      expect(line.userAgent.startsWith('brute/1.0 xxx')).toBe(true);
      expect(line.time).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/); // ISO, not epoch ms
    }
    const fromFlooder = lines.filter((l) => l.ip === flooder);
    expect(fromFlooder.at(-1)).toMatchObject({ status: 429, gates: ['ip'] });
    expect(fromFlooder.slice(0, -1).every((l) => l.status === 200 && l.gates === undefined && l.reason === undefined)).toBe(true);

    // Each refused request counted once by its gate (a key this instance had verified used to count its IP refusal twice).
    const metrics = await (await fetch(`${t.url}/metrics`)).text();
    expect(metrics).toMatch(/^tollgate_rate_limit_rejections_total\{gate="ip",coordinate=""\} 1$/m);
    expect(metrics).toMatch(/^tollgate_rate_limit_rejections_total\{gate="auth-failures",coordinate=""\} 1$/m);

    // Not one character of any key tried, anywhere in the log (nor the part after the prefix).
    const everything = t.logs.join('\n');
    for (const key of tried) {
      expect(everything).not.toContain(key);
      expect(everything).not.toContain(key.slice(3, 19));
    }
  });
});
