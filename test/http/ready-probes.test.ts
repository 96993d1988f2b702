import { useTestServer } from '../support/harness';

// /ready answers a flood of probes from one dependency check: a second's worth of probes costs
// the database one ping (counted by the test database's statement counter, which counts pings).

describe('/ready under a flood of probes', () => {
  const server = useTestServer();
  const pings = () => server.db.queries.filter((q) => q === 'select 1').length;

  it('100 concurrent probes cost the database at most 2 pings, and all answer 200', async () => {
    const before = pings();
    const answers = await Promise.all(Array.from({ length: 100 }, () => fetch(`${server.t.url}/ready`)));
    expect(answers.map((a) => a.status)).toEqual(Array(100).fill(200));
    for (const a of answers) expect(await a.json()).toMatchObject({ status: 'ready', database: 'up' });
    expect(pings() - before).toBeGreaterThanOrEqual(0);
    expect(pings() - before).toBeLessThanOrEqual(2);
  });

  it('checks again once the answer is more than a second old', async () => {
    await fetch(`${server.t.url}/ready`);
    const before = pings();
    await new Promise((r) => setTimeout(r, 1_100)); // the cache's own length: no clock to inject into fetch
    expect((await fetch(`${server.t.url}/ready`)).status).toBe(200);
    expect(pings() - before).toBe(1);
  });
});
