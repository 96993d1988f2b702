import { useTestServer } from '../support/harness';

// /ready answers a flood of probes from one dependency check: a second's worth of probes costs
// the database one ping (counted by the test database's statement counter, which counts pings).
// The server's clock is the test's: it stands still for the flood and moves past the cache's
// second when told, so how fast this machine answers 100 probes decides nothing.

describe('/ready under a flood of probes', () => {
  let clock = Date.now();
  const server = useTestServer({ now: () => clock });
  const pings = () => server.db.queries.filter((q) => q === 'select 1').length;

  it('100 concurrent probes within one second cost the database one ping, and all answer 200', async () => {
    clock += 10_000; // whatever was cached before is stale
    const before = pings();
    const answers = await Promise.all(Array.from({ length: 100 }, () => fetch(`${server.t.url}/ready`)));
    expect(answers.map((a) => a.status)).toEqual(Array(100).fill(200));
    for (const a of answers) expect(await a.json()).toMatchObject({ status: 'ready', database: 'up' });
    expect(pings() - before).toBe(1);
  });

  it('checks again once the answer is more than a second old, not before', async () => {
    clock += 10_000;
    await fetch(`${server.t.url}/ready`);
    const before = pings();
    clock += 900;
    expect((await fetch(`${server.t.url}/ready`)).status).toBe(200);
    expect(pings() - before).toBe(0);
    clock += 200;
    expect((await fetch(`${server.t.url}/ready`)).status).toBe(200);
    expect(pings() - before).toBe(1);
  });
});
