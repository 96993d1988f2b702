import { monitorEventLoopDelay } from 'node:perf_hooks';
import fc from 'fast-check';
import { flushTestRedis, openTestDatabase, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { fanOutDocument, fanOutShapes, type FanOut } from '../support/hostile-documents';
import { storeBackends } from '../support/services';

// The bound is on the event loop, not the wall clock: while a document is served, no other
// request may wait longer than this for the process (a slow CI machine slows both equally).
const MAX_EVENT_LOOP_DELAY_MS = 150;

describe.each(storeBackends())('hostile documents on the %s store', (store) => {
  let db: TestDatabase;
  let t: TestServer;
  let key: string;

  beforeAll(async () => {
    if (store === 'redis') await flushTestRedis();
    db = await openTestDatabase('pglite');
    t = await startTestServer({ database: db, store, env: { MAX_QUERY_COST: '100000' } });
    key = (await t.createKey({ scopes: ['read'], budget: { points: 10_000_000, duration: 60 } })).secret;
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });

  /** Serves one document; returns the response and the longest the event loop was blocked meanwhile. */
  async function serve(document: { query: string; variables: Record<string, unknown> }) {
    const delay = monitorEventLoopDelay({ resolution: 5 });
    delay.enable();
    try {
      const res = await t.gql(document.query, document.variables, key);
      return { res, blockedMs: delay.max / 1e6 };
    } finally {
      delay.disable();
    }
  }

  it('the reported document — one fragment spread 80 times, five levels deep — answers without stalling the process', async () => {
    const { res, blockedMs } = await serve(fanOutDocument({ breadth: 80, depth: 5, on: 'Query', inline: false, aliases: false, directives: false }));
    expect(res.status).toBe(200);
    expect(res.body.data).toEqual({ __typename: 'Query' });
    expect(blockedMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
  });

  it('generated fan-outs (breadth, depth, lists, inline fragments, aliases, directives) never block the event loop nor answer 500', async () => {
    await fc.assert(
      fc.asyncProperty(fanOutShapes, async (shape: FanOut) => {
        const { res, blockedMs } = await serve(fanOutDocument(shape));
        expect([200, 400]).toContain(res.status);
        if (res.status === 400) expect(['QUERY_TOO_COMPLEX', 'GRAPHQL_PARSE_FAILED', 'GRAPHQL_VALIDATION_FAILED']).toContain(res.body.errors[0].extensions.code);
        expect(blockedMs).toBeLessThan(MAX_EVENT_LOOP_DELAY_MS);
      }),
      { numRuns: 25, seed: 22 },
    );
  });
});
