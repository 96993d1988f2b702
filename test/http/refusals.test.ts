import { flushTestRedis, useTestServer } from '../support/harness';
import { storeBackends } from '../support/services';

// A refusal costs nothing: an operation refused for a scope, and field calls refused as
// BAD_USER_INPUT, give back every point they took — operation budget and field windows alike.
const BUDGET = '{ rateLimit { remaining limit } }';
const USAGE = 'query($id: ID!) { apiKey(id: $id) { usage { coordinate duration remaining } } }';
const RECORD = 'mutation($input: RecordObservationInput!) { recordObservation(input: $input) { id } }';
const reading = { stationId: 'OSL', temperatureC: -3.5, humidity: 80, windKph: 12 };

describe.each(storeBackends())('refusals cost nothing, on the %s store', (store) => {
  beforeAll(async () => {
    if (store === 'redis') await flushTestRedis();
  });
  const s = useTestServer({ store });

  const remaining = async (secret: string) => (await s.t.gql(BUDGET, {}, secret)).body.data.rateLimit.remaining as number;
  const fieldLeft = async (id: string, coordinate: string) => {
    const usage = (await s.t.gql(USAGE, { id })).body.data.apiKey.usage as { coordinate: string; duration: number; remaining: number }[];
    return usage.filter((u) => u.coordinate === coordinate).map((u) => u.remaining);
  };

  it('a read-only key refused recordObservation (403 FORBIDDEN) keeps its whole operation budget', async () => {
    const reader = await s.t.createKey({ scopes: ['read'] });
    const before = await remaining(reader.secret);
    const res = await s.t.gql(RECORD, { input: reading }, reader.secret);
    expect(res.status).toBe(403);
    expect(res.body.errors[0].extensions.code).toBe('FORBIDDEN');
    expect(res.body.extensions.cost.actualQueryCost).toBe(0);
    expect(await remaining(reader.secret)).toBe(before);
    expect(await fieldLeft(reader.id, 'Mutation.recordObservation')).toEqual([110]);
  });

  it.each([
    ['days out of range', '{ forecast(stationId: "LHR", days: 15) { highC } }', 'days'],
    ['an unknown station', '{ forecast(stationId: "NOPE", days: 3) { highC } }', 'stationId'],
  ])('forecast refused for %s (BAD_USER_INPUT) spends neither window nor operation budget', async (_name, query, field) => {
    const key = await s.t.createKey({ scopes: ['read'] });
    const before = await remaining(key.secret);
    const res = await s.t.gql(query, {}, key.secret);
    expect(res.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
    expect(res.body.extensions.cost.actualQueryCost).toBe(0);
    expect(await fieldLeft(key.id, 'Query.forecast')).toEqual([40, 2000]);
    expect(await remaining(key.secret)).toBe(before);
    // So the windows still admit their full points: 20 calls of one day (2 points each) all pass,
    // and the hour window holds exactly their 40 (the one-second window may have rolled over
    // meanwhile on a loaded machine, so it is not read back).
    const calls = await Promise.all(Array.from({ length: 20 }, () => s.t.gql('{ forecast(stationId: "LHR", days: 1) { highC } }', {}, key.secret)));
    for (const ok of calls) expect(ok.body.errors).toBeUndefined();
    expect((await fieldLeft(key.id, 'Query.forecast'))[1]).toBe(1960);
  });

  it('a refused nested field gives back its points while its siblings are charged', async () => {
    const key = await s.t.createKey({ scopes: ['read'] });
    const res = await s.t.gql('{ ok: forecast(stationId: "LHR", days: 2) { highC } bad: forecast(stationId: "LHR", days: 99) { highC } }', {}, key.secret);
    expect(res.body.data.ok).toHaveLength(2);
    expect(res.body.data.bad).toBeNull();
    expect(res.body.errors.map((e: any) => [e.path.join('.'), e.extensions.code])).toEqual([['bad', 'BAD_USER_INPUT']]);
    expect(await fieldLeft(key.id, 'Query.forecast')).toEqual([36, 1996]); // only `ok`'s 4 points
    expect(res.body.extensions.cost.actualQueryCost).toBe(4);
  });
});
