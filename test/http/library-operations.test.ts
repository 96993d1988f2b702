import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { createTollgate, metricsHandler, operationsHandler, readinessHandler, requestLogPlugin, type Tollgate } from '../../src/index';
import { generateKey } from '../../src/keys/format';
import { testConfig } from '../support/harness';

// What an owner mounts beside their own Apollo server (standalone here; the README's examples run
// the same exports from the packed package, standalone and under Express): the access line the
// bundled server writes, and /health, /ready, /metrics as plain Node handlers.
describe('library: the request log plugin and the operational handlers', () => {
  let tollgate: Tollgate;
  let apollo: ApolloServer<any>;
  let url: string;
  let ops: http.Server;
  let opsUrl: string;
  let key: { secret: string; id: string };
  const logs: string[] = [];

  beforeAll(async () => {
    const logStream = new Writable({ write: (chunk, _enc, done) => (logs.push(...String(chunk).split('\n').filter(Boolean)), done()) });
    tollgate = await createTollgate({ config: testConfig({ DATA_DIR: 'memory://', TRUST_PROXY: 'true', METRICS_TOKEN: 'library-metrics-token-0123456789' }), printAdminKey: false, logStream });
    const schema = tollgate.schema({ typeDefs: 'type Query { hello: String }', resolvers: { Query: { hello: () => 'world' } } });
    apollo = new ApolloServer({ schema, plugins: [...tollgate.plugins, requestLogPlugin(tollgate)], ...tollgate.apolloOptions });
    ({ url } = await startStandaloneServer(apollo, { context: tollgate.context, listen: { port: 0, host: '127.0.0.1' } }));
    ops = http.createServer(operationsHandler(tollgate));
    await new Promise<void>((resolve) => ops.listen(0, '127.0.0.1', resolve));
    opsUrl = `http://127.0.0.1:${(ops.address() as AddressInfo).port}`;
    const created = await tollgate.services.keys.create({ name: 'library', scopes: ['read'] }, null);
    if (!created.ok) throw new Error(created.message);
    key = { secret: created.value.secret, id: created.value.key.id };
  });
  afterAll(async () => {
    ops?.close();
    await apollo?.stop();
    await tollgate?.close();
  });

  const post = (headers: Record<string, string>) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: JSON.stringify({ query: 'query Hi { hello }' }) });
  const requestLines = () => logs.map((l) => JSON.parse(l)).filter((l) => l.msg === 'request');
  const until = async (check: () => boolean) => {
    for (let i = 0; i < 100 && !check(); i++) await new Promise((r) => setTimeout(r, 20));
  };

  it('writes the bundled server\'s access line: address, user agent, key id, and for a refusal its gate and reason', async () => {
    const from = { 'x-forwarded-for': '192.0.2.44', 'user-agent': 'owner-test/1' };
    const wrong = generateKey('tg');
    expect((await post(from)).status).toBe(401);
    expect((await post({ ...from, 'x-api-key': wrong })).status).toBe(401);
    expect((await post({ ...from, 'x-api-key': key.secret })).status).toBe(200);
    const get = await fetch(`${url}?query=${encodeURIComponent('{ hello }')}`, { headers: from });
    expect(get.status).toBe(401); // a keyless GET is a 401 here too, not a CSRF 400
    await until(() => requestLines().length >= 4);
    const lines = requestLines();
    expect(lines.map((l) => [l.method, l.status, l.ip, l.userAgent, l.gates, l.reason, l.keyId])).toEqual([
      ['POST', 401, '192.0.2.44', 'owner-test/1', ['key'], 'missing', undefined],
      ['POST', 401, '192.0.2.44', 'owner-test/1', ['key'], 'unknown', undefined],
      ['POST', 200, '192.0.2.44', 'owner-test/1', undefined, undefined, key.id],
      ['GET', 401, '192.0.2.44', 'owner-test/1', ['key'], 'missing', undefined],
    ]);
    expect(lines[2]).toMatchObject({ path: '/', operationName: 'Hi', operationType: 'query', cost: 0, reqId: expect.any(String), durationMs: expect.any(Number) });
    expect(lines[2].time).toMatch(/^\d{4}-\d\d-\d\dT/);
    expect(logs.join('\n')).not.toContain(wrong);
    expect(logs.join('\n')).not.toContain(key.secret);
  });

  it('serves /health, /ready and /metrics (bearer token, refused in the GraphQL error shape) from one plain Node handler, anything else 404', async () => {
    const health = await fetch(`${opsUrl}/health`);
    expect([health.status, await health.json()]).toEqual([200, { status: 'ok' }]);
    const ready = await fetch(`${opsUrl}/ready`);
    expect([ready.status, await ready.json()]).toEqual([200, { status: 'ready', database: 'up', limiterStore: 'memory', onStoreFailure: 'insurance' }]);
    const refused = await fetch(`${opsUrl}/metrics`);
    expect(refused.status).toBe(401);
    expect(((await refused.json()) as any).errors[0].extensions.code).toBe('UNAUTHENTICATED');
    const metrics = await fetch(`${opsUrl}/metrics`, { headers: { authorization: 'Bearer library-metrics-token-0123456789' } });
    expect(metrics.status).toBe(200);
    const text = await metrics.text();
    // The plugin counts the requests it logs, as the bundled server does.
    expect(text).toMatch(/^tollgate_requests_total\{status="401",operation_type="none"\} 3$/m);
    expect(text).toMatch(/^tollgate_requests_total\{status="200",operation_type="query"\} 1$/m);
    expect(text).toMatch(/^tollgate_auth_failures_total\{reason="invalid"\} 1$/m);
    const elsewhere = await fetch(`${opsUrl}/nowhere`);
    expect([elsewhere.status, ((await elsewhere.json()) as any).errors[0].extensions.code]).toEqual([404, 'NOT_FOUND']);
  });
});

describe('library: the operational handlers when something goes wrong', () => {
  const listen = async (handler: http.RequestListener) => {
    const server = http.createServer(handler);
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}` };
  };
  const metricsOf = { services: { metrics: { render: async () => ({ contentType: 'text/plain', body: 'tollgate_up 1\n' }) } } } as any;

  it('in production, metricsHandler on a public route without METRICS_TOKEN refuses (403), as the bundled server does not mount it; operationsHandler, meant for a private port, serves it', async () => {
    const production = { ...metricsOf, config: { env: 'production' } };
    const publicRoute = await listen(metricsHandler(production));
    const privatePort = await listen(operationsHandler({ ...production, ready: async () => ({ ok: true, status: 'ready' }) } as any));
    try {
      const refused = await fetch(`${publicRoute.url}/metrics`);
      expect(refused.status).toBe(403);
      expect(((await refused.json()) as any).errors[0]).toMatchObject({ extensions: { code: 'FORBIDDEN' }, message: expect.stringContaining('METRICS_TOKEN') });
      expect((await fetch(`${privatePort.url}/metrics`)).status).toBe(200);
      const withToken = await listen(metricsHandler({ ...production, config: { env: 'production', metricsToken: 't0ken-t0ken-t0ken' } }));
      try {
        expect((await fetch(withToken.url, { headers: { authorization: 'Bearer t0ken-t0ken-t0ken' } })).status).toBe(200);
      } finally {
        withToken.server.close();
      }
      const development = await listen(metricsHandler({ ...metricsOf, config: { env: 'development' } }));
      try {
        expect((await fetch(development.url)).status).toBe(200);
      } finally {
        development.server.close();
      }
    } finally {
      publicRoute.server.close();
      privatePort.server.close();
    }
  });

  it('a check that throws is answered 503 in the GraphQL error shape: no unhandled rejection, no hung request', async () => {
    const rejections: unknown[] = [];
    const onRejection = (reason: unknown) => rejections.push(reason);
    process.on('unhandledRejection', onRejection);
    const broken = await listen(readinessHandler({ ready: async () => { throw new Error('internal detail 42'); } }));
    try {
      const res = await fetch(broken.url, { signal: AbortSignal.timeout(10_000) });
      expect(res.status).toBe(503);
      const body = (await res.json()) as any;
      expect(body.errors[0].extensions.code).toBe('SERVICE_UNAVAILABLE');
      expect(JSON.stringify(body)).not.toContain('internal detail 42');
      expect(rejections).toEqual([]);
    } finally {
      process.off('unhandledRejection', onRejection);
      broken.server.close();
    }
  });
});
