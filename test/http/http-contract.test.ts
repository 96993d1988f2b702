import http from 'node:http';
import { useTestServer } from '../support/harness';

/** Raw HTTP, so the test controls every header and byte (fetch refuses some of them). */
export function rawRequest(url: string, options: { method?: string; path?: string; headers?: Record<string, string>; body?: string }): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request(`${url}${options.path ?? '/graphql'}`, { method: options.method ?? 'POST', headers: options.headers, agent: false }, (res) => {
      let body = '';
      res.on('data', (c) => (body += c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end(options.body);
  });
}

/** Every error answer is GraphQL-shaped: `{ errors: [{ message, extensions: { code } }] }`, no stack. */
function codeOf(body: string): string {
  const parsed = JSON.parse(body);
  expect(Array.isArray(parsed.errors)).toBe(true);
  expect(JSON.stringify(parsed)).not.toMatch(/stacktrace|\n\s+at /);
  return parsed.errors[0].extensions.code;
}

describe('the HTTP contract (GraphQL over HTTP)', () => {
  const s = useTestServer();
  const post = (query: string, accept = 'application/json', extra: Record<string, string> = {}) =>
    rawRequest(s.t.url, { headers: { 'content-type': 'application/json', accept, 'x-api-key': s.t.adminKey, ...extra }, body: JSON.stringify({ query }) });

  describe.each(['application/json', 'application/graphql-response+json'])('documents that do not parse, Accept: %s', (accept) => {
    it.each([
      ['an unclosed selection', '{ station(id: "LHR") { name }'],
      ['a stray NUL character', '{ station(id: "LHR") { name } }\u0000'],
      ['a non-ASCII operation name', 'query Wetterstation\u00e4 { __typename }'],
      ['a lone brace', '}'],
    ])('%s → 400 GRAPHQL_PARSE_FAILED', async (_name, query) => {
      const res = await post(query, accept);
      expect(res.status).toBe(400);
      expect(codeOf(res.body)).toBe('GRAPHQL_PARSE_FAILED');
    });

    it('a document over MAX_TOKENS → 400 GRAPHQL_PARSE_FAILED naming the limit', async () => {
      const query = `{ ${Array.from({ length: 1100 }, (_, i) => `a${i}: __typename`).join(' ')} }`;
      const res = await post(query, accept);
      expect(res.status).toBe(400);
      expect(codeOf(res.body)).toBe('GRAPHQL_PARSE_FAILED');
      expect(JSON.parse(res.body).errors[0].message).toMatch(/2000 tokens/);
    });

    it('too many directives → 400 GRAPHQL_VALIDATION_FAILED', async () => {
      const query = `{ __typename ${'@include(if: true) '.repeat(60)} }`;
      const res = await post(query, accept);
      expect(res.status).toBe(400);
      expect(codeOf(res.body)).toBe('GRAPHQL_VALIDATION_FAILED');
    });
  });

  it('answers a GET query that carries the key header (x-api-key forces a CORS preflight)', async () => {
    const res = await rawRequest(s.t.url, { method: 'GET', path: `/graphql?query=${encodeURIComponent('{ station(id: "LHR") { name } }')}`, headers: { 'x-api-key': s.t.adminKey } });
    expect(res.status).toBe(200);
    expect(JSON.parse(res.body).data.station.name).toBeTruthy();
  });

  it('answers a GET with no key 401 UNAUTHENTICATED, like a POST with none (not a CSRF 400: a keyless request runs nothing)', async () => {
    const get = await rawRequest(s.t.url, { method: 'GET', path: `/graphql?query=${encodeURIComponent('{ __typename }')}` });
    const post = await rawRequest(s.t.url, { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: '{ __typename }' }) });
    expect([get.status, codeOf(get.body)]).toEqual([401, 'UNAUTHENTICATED']);
    expect(JSON.parse(get.body).errors[0].message).toBe(JSON.parse(post.body).errors[0].message);
    // A simple (non-preflighted) POST a browser could send from any page: refused the same way.
    const simple = await rawRequest(s.t.url, { headers: { 'content-type': 'text/plain' }, body: JSON.stringify({ query: 'mutation { __typename }' }) });
    expect(simple.status).not.toBe(200);
    expect(JSON.parse(simple.body).data).toBeUndefined();
  });

  it.each([
    ['an unsupported content type → 415 BAD_REQUEST', 415, 'BAD_REQUEST', { headers: { 'content-type': 'application/xml' }, body: '<q/>' }],
    ['a body over 1 MB → 413 BAD_REQUEST', 413, 'BAD_REQUEST', { headers: { 'content-type': 'application/json' }, body: JSON.stringify({ query: `{ __typename }${' '.repeat(1_100_000)}` }) }],
    ['headers over 16 KB → 431 BAD_REQUEST', 431, 'BAD_REQUEST', { headers: { 'content-type': 'application/json', 'x-padding': 'a'.repeat(17 * 1024) }, body: '{"query":"{ __typename }"}' }],
    ['an unknown path → 404 NOT_FOUND', 404, 'NOT_FOUND', { path: '/nowhere', method: 'GET', headers: {} }],
    ['an unsupported method → 404 NOT_FOUND', 404, 'NOT_FOUND', { method: 'DELETE', headers: {} }],
  ] as const)('%s', async (_name, status, code, request: { path?: string; method?: string; headers: Record<string, string>; body?: string }) => {
    const res = await rawRequest(s.t.url, { ...request, headers: { ...request.headers, 'x-api-key': s.t.adminKey } });
    expect(res.status).toBe(status);
    expect(res.headers['content-type']).toMatch(/application\/json/);
    expect(codeOf(res.body)).toBe(code);
  });

  it('a 15 KB unknown path is answered 404 without echoing it whole, and logged cut to 256 characters', async () => {
    const path = `/nowhere/${'z'.repeat(15 * 1024)}`;
    const res = await rawRequest(s.t.url, { path, method: 'GET', headers: {} });
    expect(res.status).toBe(404);
    expect(codeOf(res.body)).toBe('NOT_FOUND');
    expect(res.body.length).toBeLessThan(1024);
    expect(res.body).toContain('No route GET /nowhere/zzz');
    const line = s.t.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'request' && String(l.path).startsWith('/nowhere/'));
    expect(line.path).toHaveLength(256);
    expect(line.path.endsWith('…')).toBe(true);
  });

  it('an operation name of 2 000 characters is served, and logged cut to 256', async () => {
    const name = `Q${'n'.repeat(1999)}`;
    const res = await post(`query ${name} { __typename }`);
    expect(res.status).toBe(200);
    const line = s.t.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'request' && String(l.operationName).startsWith('Qnnn'));
    expect(line.operationName).toBe(`${name.slice(0, 255)}…`);
  });

  it('logs every hardening refusal with its gate: characters, tokens, directives', async () => {
    const hostile = [
      `{ __typename }${' '.repeat(25_000)}`, // over MAX_QUERY_CHARS: refused before parsing
      `{ ${Array.from({ length: 1100 }, (_, i) => `t${i}: __typename`).join(' ')} }`, // over MAX_TOKENS: refused while parsing
      `{ __typename ${'@include(if: true) '.repeat(60)} }`, // over MAX_DIRECTIVES: refused while validating
    ];
    for (const query of hostile) {
      const res = await post(query);
      expect(res.status).toBe(400);
      const id = res.headers['x-request-id'];
      const line = s.t.logs.map((l) => JSON.parse(l)).find((l) => l.msg === 'request' && l.reqId === id);
      expect(line).toMatchObject({ status: 400, gates: ['hardening'] });
    }
  });

  it('a header just under 16 KB is still served', async () => {
    const res = await rawRequest(s.t.url, { headers: { 'content-type': 'application/json', 'x-api-key': s.t.adminKey, 'x-padding': 'a'.repeat(15 * 1024) }, body: '{"query":"{ __typename }"}' });
    expect(res.status).toBe(200);
  });
});
