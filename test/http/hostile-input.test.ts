import { useTestServer } from '../support/harness';
import { assertHostileInputIsHandled, judge, send } from '../support/hostile-input';

// Random malformed documents, variables, headers, bodies and methods: always a JSON answer with
// extensions.code, a status below 500 (or a coded 503), no stack, and the server still alive.
// Fixed seed and a bounded count here; `npm run bench` runs a longer one (BENCH_FUZZ_RUNS).
describe('hostile input, generated', () => {
  const s = useTestServer({ env: { ALLOW_BATCHING: 'true' } });

  it('the judge itself refuses what it must (a 500, a stack, a code-less error, non-JSON)', () => {
    const post = { method: 'POST', path: '/graphql', headers: {} };
    expect(judge(post, { status: 500, headers: {}, body: '{"errors":[{"message":"x","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}' })).toMatch(/status 500/);
    expect(judge(post, { status: 400, headers: {}, body: '{"errors":[{"message":"x"}]}' })).toMatch(/without extensions.code/);
    expect(judge(post, { status: 400, headers: {}, body: '{"errors":[{"message":"TypeError: x\\n    at y","extensions":{"code":"BAD_REQUEST"}}]}' })).toMatch(/leaked/);
    expect(judge(post, { status: 431, headers: {}, body: 'Request Header Fields Too Large' })).toMatch(/not JSON/);
    expect(judge(post, { status: 400, headers: {}, body: '{"errors":[{"message":"x","extensions":{"code":"BAD_REQUEST"}}]}' })).toBeNull();
  });

  it('1000 generated requests (seed 20261126): every answer is coded, below 500, and the server stays up', async () => {
    await assertHostileInputIsHandled(s.t.url, s.t.adminKey, { seed: 20261126, numRuns: 1000 });
    const health = await send(s.t.url, { method: 'GET', path: '/health', headers: {} });
    expect(health?.status).toBe(200);
    expect((await s.t.gql('{ station(id: "LHR") { name } }')).status).toBe(200);
  }, 120_000);
});
