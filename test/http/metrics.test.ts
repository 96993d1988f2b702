import { generateKey } from '../../src/keys/format';
import { useTestServer, withTestServer } from '../support/harness';

/** The value of one series in Prometheus text output (0 when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number {
  const wanted = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(name + '{') && !line.startsWith(name + ' ')) continue;
    if (wanted.every((w) => line.includes(w))) return Number(line.split(' ').pop());
  }
  return 0;
}

const seriesCount = (text: string) => text.split('\n').filter((l) => l.startsWith('tollgate_')).length;

describe('metrics', () => {
  const server = useTestServer();
  const scrape = async () => (await fetch(`${server.t.url}/metrics`)).text();

  it('serves Prometheus text with process metrics', async () => {
    const res = await fetch(`${server.t.url}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toMatch(/text\/plain/);
    const text = await res.text();
    expect(text).toContain('process_cpu_user_seconds_total');
    expect(text).toContain('tollgate_key_cache_lookups_total');
  });

  it('counts requests, auth failures, refusals by gate and coordinate, cost and cache lookups', async () => {
    const before = await scrape();
    await server.t.gql('{ __typename }', {}, generateKey('tg'));
    await server.t.gql('{ __typename }', {}, null);
    const key = await server.t.createKey({ limits: [{ coordinate: 'Query.station', limit: 1, duration: 60 }], budget: { points: 3, duration: 60 } });
    await server.t.gql('{ station(id: "LHR") { id } }', {}, key.secret);
    await server.t.gql('{ a: station(id: "LHR") { id } }', {}, key.secret); // field refused
    await server.t.gql('{ station(id: "LHR") { id } }', {}, key.secret); // budget of 3 spent → 429
    await server.t.gql('{ station(id: "LHR") { id } }', {}, key.secret);
    const after = await scrape();
    const delta = (name: string, labels: Record<string, string> = {}) => sample(after, name, labels) - sample(before, name, labels);
    expect(delta('tollgate_auth_failures_total', { reason: 'invalid' })).toBe(1);
    expect(delta('tollgate_auth_failures_total', { reason: 'missing' })).toBe(1);
    expect(delta('tollgate_rate_limit_rejections_total', { gate: 'field', coordinate: 'Query.station' })).toBe(2);
    expect(delta('tollgate_rate_limit_rejections_total', { gate: 'operation' })).toBe(1);
    expect(delta('tollgate_requests_total', { status: '401' })).toBe(2);
    expect(delta('tollgate_requests_total', { status: '429', operation_type: 'query' })).toBe(1);
    expect(delta('tollgate_operation_cost_points_count')).toBe(4);
    expect(delta('tollgate_key_cache_lookups_total', { result: 'hit' })).toBeGreaterThanOrEqual(3);
    expect(delta('tollgate_limiter_store_duration_seconds_count', { store: 'memory', call: 'consume' })).toBeGreaterThan(0);
    // the access log says what each request cost and which gate refused it
    const lines = server.t.logs.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request' && l.keyId === key.id);
    expect(lines.map((l) => l.status)).toEqual([200, 200, 200, 429]);
    expect(lines[1]).toMatchObject({ cost: 1, gates: ['field:Query.station'] });
    expect(lines[3]).toMatchObject({ gates: ['operation'] });
    expect(typeof lines[0].budgetStoreMs).toBe('number');
  });

  it('keeps label cardinality bounded when 1,000 distinct keys call', async () => {
    const warm = await server.t.createKey();
    await server.t.gql('{ station(id: "LHR") { id } }', {}, warm.secret);
    // The usage writer's series ({result="written"}) appears with its first flush, every 2 s:
    // flush once now, so what is compared is what 1 000 keys add, not what the timer adds.
    await server.t.server.tollgate.services.usage.writer?.flush();
    const before = seriesCount(await scrape());
    const keys = [];
    for (let i = 0; i < 1000; i++) keys.push((await server.t.server.keys.create({ name: `k${i}`, scopes: ['read'] }, null)) as { ok: true; value: { secret: string } });
    for (let i = 0; i < keys.length; i += 50) {
      await Promise.all(keys.slice(i, i + 50).map((k) => server.t.gql('{ station(id: "LHR") { id } }', {}, k.value.secret)));
    }
    const text = await scrape();
    expect(seriesCount(text)).toBe(before);
    for (const k of keys.slice(0, 20)) expect(text).not.toContain(k.value.secret);
  }, 180_000); // 1 000 keys made and used: ~7 s alone, over 60 s with a second suite and its bench beside it
});

describe('metrics protection', () => {
  it('needs the bearer token when METRICS_TOKEN is set, and refuses without it in the GraphQL error shape (401 UNAUTHENTICATED)', () =>
    withTestServer({ env: { METRICS_TOKEN: 'a-long-metrics-token-1234' } }, async (t) => {
      for (const headers of [{}, { authorization: 'Bearer wrong-token-of-some-length' }] as Record<string, string>[]) {
        const refused = await fetch(`${t.url}/metrics`, { headers });
        expect(refused.status).toBe(401);
        expect(refused.headers.get('www-authenticate')).toBe('Bearer');
        expect(refused.headers.get('content-type')).toMatch(/application\/json/);
        // The one error shape every answer has (README), not a shape of its own.
        expect(await refused.json()).toEqual({ errors: [{ message: expect.stringMatching(/METRICS_TOKEN/), extensions: { code: 'UNAUTHENTICATED' } }] });
      }
      expect((await fetch(`${t.url}/metrics`, { headers: { authorization: 'Bearer a-long-metrics-token-1234' } })).status).toBe(200);
    }));

  it('serves on its own port when METRICS_PORT is set, and not on the API port', () =>
    // Port 0: the server binds a port of its own choosing and reports it (never a port found free
    // here and released, which another process may take first).
    withTestServer({ env: { METRICS_PORT: '0' } }, async (t) => {
      const metricsUrl = t.server.metricsUrl!;
      expect(metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
      expect(metricsUrl).not.toBe(t.url);
      expect((await fetch(`${t.url}/metrics`)).status).toBe(404);
      expect((await fetch(`${metricsUrl}/metrics`)).status).toBe(200);
      // Its own listener answers anything else in the one error shape too, not Fastify's.
      const elsewhere = await fetch(`${metricsUrl}/graphql`);
      expect(elsewhere.status).toBe(404);
      expect(await elsewhere.json()).toEqual({ errors: [{ message: 'No route GET /graphql.', extensions: { code: 'NOT_FOUND' } }] });
    }));
});
