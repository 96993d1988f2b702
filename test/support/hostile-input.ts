import http from 'node:http';
import fc from 'fast-check';

// Generative hostile input: random methods, paths, headers and bodies (mostly near-misses of
// real GraphQL requests, which reach deepest) sent to a running server. Shared by the test
// suite (fixed seed, bounded count) and the bench (a longer run).

export type HostileRequest = { method: string; path: string; headers: Record<string, string>; body?: string };
export type HostileAnswer = { status: number; headers: http.IncomingHttpHeaders; body: string };

const documents = [
  '{ station(id: "LHR") { name country } }',
  'query Q($id: ID!) { station(id: $id) { name observations(last: 3) { temperatureC } } }',
  '{ stations(first: 5) { edges { node { id } } pageInfo { hasNextPage } } }',
  '{ forecast(stationId: "LHR", days: 3) { date highC } }',
  'mutation($input: RecordObservationInput!) { recordObservation(input: $input) { id } }',
  '{ rateLimit(dryRun: true) { cost remaining } stations(first: 50) { edges { node { id } } } }',
  '{ me { id scopes usage { coordinate remaining } } }',
  'query { apiKeys(first: 2) { edges { cursor node { id } } } }',
  'fragment F on Station { name } { station(id: "OSL") { ...F } }',
  '{ __schema { types { name } } }',
];
/** encodeURIComponent that survives the lone surrogates random edits produce. */
const uri = (text: string) => {
  try {
    return encodeURIComponent(text);
  } catch {
    return encodeURIComponent(text.replace(/[\uD800-\uDFFF]/g, '?'));
  }
};
const alphabet = fc.constantFrom(...'{}()[]:$!@"\\ ,.\n\t#&|=...abcxyz019_-éß😀\u0000\u200b\ufeff'.split(''));
const junk = fc.array(alphabet, { maxLength: 12 }).map((cs) => cs.join(''));

/** A real document with a few random edits: the near-misses that get past the first checks. */
const mutatedDocument = fc
  .tuple(fc.constantFrom(...documents), fc.array(fc.tuple(fc.nat(), fc.nat({ max: 6 }), junk), { maxLength: 4 }))
  .map(([doc, edits]) => edits.reduce((d, [at, cut, insert]) => d.slice(0, at % (d.length + 1)) + insert + d.slice((at % (d.length + 1)) + cut), doc));

const weirdJson = fc.oneof(
  fc.jsonValue({ maxDepth: 3 }),
  fc.constantFrom(2147483648, -1, 1e308, Number.MAX_SAFE_INTEGER, '', 'LHR', null, [], {}, 'x'.repeat(5000)),
);
const variables = fc.oneof(
  fc.constant(undefined),
  fc.dictionary(fc.constantFrom('id', 'input', 'first', 'after', 'dryRun', 'days', 'x'), weirdJson, { maxKeys: 3 }),
  weirdJson,
);
const query = fc.oneof({ weight: 6, arbitrary: mutatedDocument }, { weight: 1, arbitrary: fc.constantFrom(...documents) }, { weight: 1, arbitrary: fc.string({ maxLength: 200 }) }, { weight: 1, arbitrary: weirdJson });
const operation = fc.record(
  {
    query,
    variables,
    operationName: fc.oneof(fc.constant(undefined), fc.constantFrom('Q', 'F', '', 'nope'), fc.string({ maxLength: 10 })),
    extensions: fc.oneof(fc.constant(undefined), fc.constant({ persistedQuery: { version: 1, sha256Hash: 'abc' } }), weirdJson),
  },
  { requiredKeys: [] },
);
const body = fc.oneof(
  { weight: 6, arbitrary: operation.map((o) => JSON.stringify(o)) },
  { weight: 1, arbitrary: fc.array(operation, { maxLength: 3 }).map((o) => JSON.stringify(o)) },
  { weight: 1, arbitrary: fc.string({ maxLength: 300 }) },
  { weight: 1, arbitrary: mutatedDocument.map((d) => `{"query": ${JSON.stringify(d).slice(0, -3)}`) },
  { weight: 1, arbitrary: fc.constant(undefined) },
);

export function hostileRequest(adminKey: string): fc.Arbitrary<HostileRequest> {
  const key = fc.oneof(
    fc.constant(adminKey),
    fc.constant(undefined),
    fc.constantFrom('', 'tg_', 'tg_' + 'A'.repeat(38), adminKey.slice(0, -1) + 'x', adminKey + adminKey, 'x'.repeat(3000)),
    fc.string({ maxLength: 60 }),
  );
  return fc
    .record({
      method: fc.constantFrom('POST', 'POST', 'POST', 'GET', 'GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD'),
      path: fc.oneof(
        { weight: 6, arbitrary: fc.constant('/graphql') },
        { weight: 2, arbitrary: fc.tuple(mutatedDocument, variables).map(([q, v]) => `/graphql?query=${uri(q)}${v === undefined ? '' : `&variables=${uri(JSON.stringify(v))}`}`) },
        { weight: 1, arbitrary: fc.constantFrom('/graphql?query=%E0%A4%A', '/graphql?variables=%7B', '/', '/ready', '/health', '/metrics', '/graphql/', '/%2e%2e/etc', '/graphql?query=' + 'a'.repeat(30000)) },
      ),
      contentType: fc.oneof(fc.constantFrom('application/json', 'application/json', 'application/graphql-response+json', 'application/json; charset=latin1', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'application/graphql'), fc.string({ maxLength: 30 })),
      accept: fc.oneof(fc.constant(undefined), fc.constantFrom('application/json', 'application/graphql-response+json', 'text/html', '*/*', 'multipart/mixed', 'application/xml'), fc.string({ maxLength: 30 })),
      key,
      bearer: fc.oneof({ weight: 4, arbitrary: fc.constant(undefined) }, { weight: 1, arbitrary: fc.constantFrom(`Bearer ${adminKey}`, 'Bearer', 'Basic abc', 'Bearer a b', `Bearer ${adminKey}x`) }),
      body,
      extraHeader: fc.option(fc.tuple(fc.constantFrom('x-forwarded-for', 'x-apollo-operation-name', 'apollo-require-preflight', 'x-request-id'), fc.string({ maxLength: 40 }))),
    })
    .map((r) => {
      const headers: Record<string, string> = { 'content-type': r.contentType };
      if (r.accept !== undefined) headers.accept = r.accept;
      if (r.key !== undefined) headers['x-api-key'] = r.key;
      if (r.bearer !== undefined) headers.authorization = r.bearer;
      if (r.extraHeader) headers[r.extraHeader[0]] = r.extraHeader[1];
      return { method: r.method, path: r.path, headers, body: r.method === 'GET' || r.method === 'HEAD' ? undefined : r.body };
    });
}

/** Sends one request; null when Node's own client refuses to send it (illegal header bytes). */
export function send(base: string, request: HostileRequest): Promise<HostileAnswer | null> {
  return new Promise((resolve, reject) => {
    let req: http.ClientRequest;
    try {
      req = http.request(`${base}${request.path}`, { method: request.method, headers: request.headers, agent: false, timeout: 15_000 }, (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (c) => (text += c));
        res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: text }));
      });
    } catch (error) {
      const code = (error as NodeJS.ErrnoException).code;
      if (code === 'ERR_INVALID_CHAR' || code === 'ERR_INVALID_HTTP_TOKEN' || code === 'ERR_UNESCAPED_CHARACTERS') return resolve(null);
      return reject(error);
    }
    req.on('timeout', () => req.destroy(new Error(`no answer within 15 s to ${request.method} ${request.path.slice(0, 80)}`)));
    req.on('error', reject);
    req.end(request.body);
  });
}

/**
 * What every answer must be, whatever was sent: a status below 500 (or a coded 503), a JSON
 * body in the GraphQL error shape with `extensions.code` on every error, and no stack trace or
 * internal message. Returns what is wrong, or null.
 */
export function judge(request: HostileRequest, answer: HostileAnswer): string | null {
  if (answer.status >= 500 && answer.status !== 503) return `status ${answer.status}`;
  if (request.method === 'HEAD' || answer.status === 204) return null;
  // Successful non-JSON answers are legitimate (the landing page's HTML, /metrics' text); every
  // error answer must be JSON.
  if (answer.status < 300 && !/json/.test(String(answer.headers['content-type']))) return null;
  type Result = { errors?: { message?: unknown; extensions?: { code?: unknown } }[]; data?: unknown };
  let parsed: Result;
  try {
    const json = JSON.parse(answer.body) as Result | Result[];
    // A batch answers one result per operation: judge their errors together.
    parsed = Array.isArray(json) ? { errors: json.flatMap((r) => r.errors ?? []) } : json;
  } catch {
    return `not JSON: ${answer.body.slice(0, 120)}`;
  }
  if (/\n\s+at |stacktrace|TypeError|ReferenceError|Failed query/.test(answer.body)) return `internal detail leaked: ${answer.body.slice(0, 200)}`;
  if (answer.status >= 400 && !parsed.errors?.length && request.path.startsWith('/graphql')) return `status ${answer.status} without errors`;
  for (const error of parsed.errors ?? []) {
    if (typeof error.extensions?.code !== 'string') return `an error without extensions.code: ${JSON.stringify(error).slice(0, 200)}`;
  }
  if (answer.status === 503 && parsed.errors?.[0]?.extensions?.code !== 'SERVICE_UNAVAILABLE') return '503 without SERVICE_UNAVAILABLE';
  return null;
}

/** Runs the property against a server; throws fast-check's report (seed, shrunk case) on failure. */
export async function assertHostileInputIsHandled(base: string, adminKey: string, options: { seed: number; numRuns: number }) {
  // fast-check's report repeats the whole counterexample (a 30 000-character URL, say): cut it.
  await runProperty(base, adminKey, options).catch((error: Error) => {
    throw new Error(error.message.length > 3000 ? `${error.message.slice(0, 1500)}\n…\n${error.message.slice(-1500)}` : error.message);
  });
}

function runProperty(base: string, adminKey: string, options: { seed: number; numRuns: number }) {
  return fc.assert(
    fc.asyncProperty(hostileRequest(adminKey), async (request) => {
      const answer = await send(base, request);
      if (!answer) return true;
      const problem = judge(request, answer);
      if (problem) throw new Error(`${problem}\nrequest: ${JSON.stringify(request).slice(0, 600)}`);
      return true;
    }),
    { seed: options.seed, numRuns: options.numRuns, endOnFailure: true },
  );
}
