import { flushTestRedis, openTestDatabase, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { hasPostgres, hasRedisCluster, storeBackends } from '../support/services';
import { until } from '../support/wait';

// Customers and plans (issue 25): the keys of one consumer share its budgets — the operation
// budget and every field window — on one instance or several; a key's own budget under a consumer
// caps it, taken all-or-nothing with the consumer's; a plan changed live applies at once and
// counts on from what was spent.
const STATION = '{ station(id: "LHR") { name } }'; // 1 point, Query.station limited
const CREATE_PLAN = 'mutation($i: CreatePlanInput!) { createPlan(input: $i) { id name budgets { points duration } maxOperationCost } }';
const UPDATE_PLAN = 'mutation($id: ID!, $i: UpdatePlanInput!) { updatePlan(id: $id, input: $i) { id } }';
const CREATE_CONSUMER = 'mutation($i: CreateConsumerInput!) { createConsumer(input: $i) { id name externalId plan { id name } } }';
const CREATE_KEY = 'mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret apiKey { id consumer { id } } } }';

const stores: ('memory' | 'redis' | 'cluster')[] = [...storeBackends(), ...(hasRedisCluster() ? ['cluster' as const] : [])];

describe.each(stores)('consumers and plans on the %s store', (store) => {
  let db: TestDatabase;
  /** Two instances sharing the database and the store (one on memory: memory is one instance's). */
  let servers: TestServer[];
  let unique = 0;

  beforeAll(async () => {
    if (store === 'redis') await flushTestRedis();
    db = await openTestDatabase(hasPostgres() && store !== 'memory' ? 'postgres' : 'pglite');
    servers = [];
    for (let i = 0; i < (store === 'memory' ? 1 : 2); i++) servers.push(await startTestServer({ database: db, store, env: { KEY_CACHE_TTL_SECONDS: '600' } }));
    if (store === 'cluster') for (const s of servers) await until(async () => ((await (await fetch(`${s.url}/ready`)).json()) as { limiterStore: string }).limiterStore === 'up', 10_000);
  });
  afterAll(async () => {
    for (const s of servers ?? []) await s.close();
    await db?.dispose();
  });

  const admin = () => servers[0];
  const ok = async (query: string, variables: Record<string, unknown>) => {
    const res = await admin().gql(query, variables);
    expect(res.body.errors).toBeUndefined();
    return res.body.data;
  };
  const consumerWith = async (input: Record<string, unknown>) => (await ok(CREATE_CONSUMER, { i: { name: `acme ${store} ${++unique}`, ...input } })).createConsumer;
  const keyOf = async (consumerId: string, extra: Record<string, unknown> = {}) => {
    const created = (await ok(CREATE_KEY, { i: { name: 'k', scopes: ['read'], consumerId, ...extra } })).createApiKey;
    expect(created.apiKey.consumer).toEqual({ id: consumerId });
    return { secret: created.secret as string, id: created.apiKey.id as string };
  };
  /** 200 concurrent calls, alternating between two keys and between the instances. */
  const burst = (query: string, secrets: string[]) => Promise.all(Array.from({ length: 200 }, (_, i) => servers[i % servers.length].gql(query, {}, secrets[i % secrets.length])));

  it('two keys of one consumer, 200 concurrent calls through every instance against a shared 50 → exactly 50', async () => {
    const consumer = await consumerWith({ budgets: [{ points: 50, duration: 3600 }] });
    const [a, b] = [await keyOf(consumer.id), await keyOf(consumer.id)];
    const answers = await burst(STATION, [a.secret, b.secret]);
    expect(answers.filter((r) => r.status === 200)).toHaveLength(50);
    expect(answers.filter((r) => r.status === 429 && r.body.errors[0].extensions.gate === 'operation')).toHaveLength(150);
    // both keys report the one shared budget
    const status = await servers[0].gql('{ rateLimit { limit remaining } }', {}, b.secret);
    expect(status.body.data.rateLimit).toEqual({ limit: 50, remaining: 0 });
  });

  it('two keys of one consumer share every field window: 200 concurrent against Query.station at 30 → exactly 30 answered', async () => {
    const consumer = await consumerWith({ limits: [{ coordinate: 'Query.station', limit: 30, duration: 3600 }] });
    const [a, b] = [await keyOf(consumer.id), await keyOf(consumer.id)];
    const answers = await burst(STATION, [a.secret, b.secret]);
    expect(answers.filter((r) => r.body.data?.station)).toHaveLength(30);
    expect(answers.filter((r) => r.body.errors?.[0].extensions.code === 'RATE_LIMITED' && r.body.errors[0].extensions.coordinate === 'Query.station')).toHaveLength(170);
  });

  it('a key cap inside a consumer: the 6th call of a 5-point cap is refused and spends nothing of the consumer\'s', async () => {
    const consumer = await consumerWith({ budgets: [{ points: 20, duration: 3600 }] });
    const capped = await keyOf(consumer.id, { budget: { points: 5, duration: 3600 } });
    const other = await keyOf(consumer.id);
    for (let i = 1; i <= 5; i++) expect((await servers[i % servers.length].gql(STATION, {}, capped.secret)).status).toBe(200);
    const refused = await servers[0].gql(STATION, {}, capped.secret);
    expect(refused.status).toBe(429);
    expect(refused.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', gate: 'operation', cap: true, limit: 5, remaining: 0 });
    // the consumer spent exactly the 5 admitted calls: 15 are left for its other key
    const results = [];
    for (let i = 0; i < 16; i++) results.push((await servers[i % servers.length].gql(STATION, {}, other.secret)).status);
    expect(results.filter((s) => s === 200)).toHaveLength(15);
    expect(results[15]).toBe(429);
  });

  it('a plan raised from 50 to 80 admits 30 more at once, on every instance', async () => {
    const plan = (await ok(CREATE_PLAN, { i: { name: `pro ${store}`, budgets: [{ points: 50, duration: 3600 }] } })).createPlan;
    const consumer = await consumerWith({ planId: plan.id });
    expect(consumer.plan).toEqual({ id: plan.id, name: `pro ${store}` });
    const key = await keyOf(consumer.id);
    const spent = await burst(STATION, [key.secret]);
    expect(spent.filter((r) => r.status === 200)).toHaveLength(50);
    await ok(UPDATE_PLAN, { id: plan.id, i: { budgets: [{ points: 80, duration: 3600 }] } });
    // the other instance hears of it too: within a bound far inside its key cache's 10 minutes,
    // so only the change message can have told it (how fast is no test's business)
    const last = servers[servers.length - 1];
    await until(async () => (await last.gql('{ rateLimit { limit } }', {}, key.secret)).body.data.rateLimit.limit === 80, 15_000);
    const more = await burst(STATION, [key.secret]);
    expect(more.filter((r) => r.status === 200)).toHaveLength(30);
  });

  it('a plan\'s maxOperationCost refuses a costlier operation with 400 QUERY_TOO_COMPLEX, before anything is spent', async () => {
    const plan = (await ok(CREATE_PLAN, { i: { name: 'small', maxOperationCost: 10 } })).createPlan;
    const key = await keyOf((await consumerWith({ planId: plan.id })).id);
    const res = await admin().gql('{ stations(first: 12) { edges { node { id } } } }', {}, key.secret);
    expect(res.status).toBe(400);
    expect(res.body.errors[0].extensions).toMatchObject({ code: 'QUERY_TOO_COMPLEX', maxCost: 10 });
    expect((await admin().gql('{ rateLimit { used } }', {}, key.secret)).body.data.rateLimit.used).toBe(0);
  });
});

describe('consumers and plans: the admin contract', () => {
  let db: TestDatabase;
  let t: TestServer;
  beforeAll(async () => {
    db = await openTestDatabase('pglite');
    t = await startTestServer({ database: db, store: 'memory' });
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });

  const count = async (table: 'consumers' | 'plans') => (await t.gql(`{ ${table}(first: 1) { totalCount } }`, {})).body.data[table].totalCount;

  it.each([
    ['a duplicate externalId', CREATE_CONSUMER, { i: { name: 'b', externalId: 'cus_1' } }, 'externalId'],
    ['an unknown planId', CREATE_CONSUMER, { i: { name: 'b', planId: '00000000-0000-4000-8000-000000000001' } }, 'planId'],
    ['zero points', CREATE_CONSUMER, { i: { name: 'b', budgets: [{ points: 0, duration: 60 }] } }, 'budgets[0].points'],
    ['a coordinate the schema does not limit', CREATE_PLAN, { i: { name: 'p', limits: [{ coordinate: 'Query.me', limit: 5, duration: 60 }] } }, 'limits[0].coordinate'],
    ['a maxOperationCost above MAX_QUERY_COST', CREATE_PLAN, { i: { name: 'p', maxOperationCost: 1_000_000 } }, 'maxOperationCost'],
    ['an unknown consumerId on a key', CREATE_KEY, { i: { name: 'k', consumerId: '00000000-0000-4000-8000-000000000002' } }, 'consumerId'],
  ])('%s is BAD_USER_INPUT naming the field, and nothing is written', async (_name, mutation, variables, field) => {
    const first = await t.gql(CREATE_CONSUMER, { i: { name: 'a', externalId: 'cus_1' } });
    void first; // the one that holds cus_1 (a second run of this row finds it taken: same answer)
    const before = [await count('consumers'), await count('plans')];
    const res = await t.gql(mutation, variables);
    expect(res.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
    expect([await count('consumers'), await count('plans')]).toEqual(before);
  });

  it('a key holder sees its own consumer and plan through me; every other consumer or plan field needs admin', async () => {
    const plan = (await t.gql(CREATE_PLAN, { i: { name: 'free', budgets: [{ points: 100, duration: 60 }] } })).body.data.createPlan;
    const consumer = (await t.gql(CREATE_CONSUMER, { i: { name: 'Globex', externalId: 'cus_globex', planId: plan.id } })).body.data.createConsumer;
    const key = (await t.gql(CREATE_KEY, { i: { name: 'reader', scopes: ['read'], consumerId: consumer.id } })).body.data.createApiKey;
    const me = await t.gql('{ me { consumer { name externalId plan { name budgets { points duration } } } } }', {}, key.secret);
    expect(me.body.data.me.consumer).toEqual({ name: 'Globex', externalId: 'cus_globex', plan: { name: 'free', budgets: [{ points: 100, duration: 60 }] } });
    for (const query of ['{ consumers { totalCount } }', '{ plans { totalCount } }', '{ me { consumer { keys { totalCount } } } }']) {
      const res = await t.gql(query, {}, key.secret);
      expect(res.body.errors[0].extensions.code).toBe('FORBIDDEN');
    }
    // an admin finds the consumer by name or by its external id, with its keys
    const found = await t.gql('{ consumers(search: "GLOBEX") { totalCount edges { node { name keys { totalCount } } } } }', {});
    expect(found.body.data.consumers).toEqual({ totalCount: 1, edges: [{ node: { name: 'Globex', keys: { totalCount: 1 } } }] });
  });

  it('a plan in use and a consumer with live keys cannot be deleted; the answer says what to do instead', async () => {
    const plan = (await t.gql(CREATE_PLAN, { i: { name: 'old' } })).body.data.createPlan;
    const consumer = (await t.gql(CREATE_CONSUMER, { i: { name: 'Initech', planId: plan.id } })).body.data.createConsumer;
    const key = (await t.gql(CREATE_KEY, { i: { name: 'k', consumerId: consumer.id } })).body.data.createApiKey;
    const planRefused = await t.gql('mutation($id: ID!) { deletePlan(id: $id) { id } }', { id: plan.id });
    expect(planRefused.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason: 'PLAN_IN_USE' });
    expect(planRefused.body.errors[0].message).toMatch(/move them to another plan/);
    const consumerRefused = await t.gql('mutation($id: ID!) { deleteConsumer(id: $id) { id } }', { id: consumer.id });
    expect(consumerRefused.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason: 'CONSUMER_HAS_KEYS' });
    expect(consumerRefused.body.errors[0].message).toMatch(/revoke them, or move them/);
    // revoke the key: the consumer goes, the key keeps its history without the link
    await t.gql('mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: key.apiKey.id });
    expect((await t.gql('mutation($id: ID!) { deleteConsumer(id: $id) { name } }', { id: consumer.id })).body.data.deleteConsumer).toEqual({ name: 'Initech' });
    expect((await t.gql('query($id: ID!) { apiKey(id: $id) { revokedAt consumer { id } } }', { id: key.apiKey.id })).body.data.apiKey).toMatchObject({ consumer: null });
    expect((await t.gql('mutation($id: ID!) { deletePlan(id: $id) { name } }', { id: plan.id })).body.data.deletePlan).toEqual({ name: 'old' });
    expect((await t.gql('query($id: ID!) { plan(id: $id) { id } }', { id: plan.id })).body.data.plan).toBeNull();
  });

  it('a key\'s budget keeps working as one window, with budgets beside it for several (all or nothing)', async () => {
    const created = await t.gql(CREATE_KEY, { i: { name: 'two windows', scopes: ['read'], budget: { points: 10, duration: 3600 }, budgets: [{ points: 3, duration: 60 }] } });
    const secret = created.body.data.createApiKey.secret;
    for (let i = 0; i < 3; i++) expect((await t.gql(STATION, {}, secret)).status).toBe(200);
    const refused = await t.gql(STATION, {}, secret);
    expect(refused.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 3, duration: 60 });
    const key = await t.gql('query($id: ID!) { apiKey(id: $id) { budget { points duration } budgets { points duration } } }', { id: created.body.data.createApiKey.apiKey.id });
    expect(key.body.data.apiKey).toEqual({ budget: { points: 10, duration: 3600 }, budgets: [{ points: 3, duration: 60 }] });
    const status = await t.gql('{ rateLimit { windows { limit used } } }', {}, secret);
    expect(status.body.data.rateLimit.windows).toEqual([{ limit: 10, used: 3 }, { limit: 3, used: 3 }]);
    const clash = await t.gql(CREATE_KEY, { i: { name: 'x', budget: { points: 10, duration: 60 }, budgets: [{ points: 3, duration: 60 }] } });
    expect(clash.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'budgets' });
  });

  it('every change is audited with before and after', async () => {
    const plan = (await t.gql(CREATE_PLAN, { i: { name: 'team', budgets: [{ points: 50, duration: 60 }] } })).body.data.createPlan;
    await t.gql(UPDATE_PLAN, { id: plan.id, i: { budgets: [{ points: 80, duration: 60 }] } });
    const events = await t.gql('query($id: ID!) { auditEvents(targetId: $id) { edges { node { action targetId details } } } }', { id: plan.id });
    expect(events.body.data.auditEvents.edges.map((e: { node: { action: string } }) => e.node.action)).toEqual(['plan.updated', 'plan.created']);
    expect(events.body.data.auditEvents.edges[0].node.details).toMatchObject({ before: { budgets: [{ points: 50, duration: 60 }] }, after: { budgets: [{ points: 80, duration: 60 }] } });
  });
});

describe.each(stores)('quotas and several windows on the %s store', (store) => {
  let db: TestDatabase;
  let t: TestServer;
  // The clock quotas are judged on: moved to a midnight instead of waiting for one.
  let now = Date.UTC(2026, 11, 6, 23, 59, 0);

  beforeAll(async () => {
    if (store === 'redis') await flushTestRedis();
    db = await openTestDatabase('pglite');
    t = await startTestServer({ database: db, store, now: () => now });
    if (store === 'cluster') await until(async () => ((await (await fetch(`${t.url}/ready`)).json()) as { limiterStore: string }).limiterStore === 'up', 10_000);
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });

  /** The consumer keyUnder made last. */
  let consumerId: string;
  const keyUnder = async (consumer: Record<string, unknown>, key: Record<string, unknown> = {}) => {
    const created = (await t.gql(CREATE_CONSUMER, { i: { name: `q ${Math.random()}`, ...consumer } })).body.data.createConsumer;
    consumerId = created.id;
    return (await t.gql(CREATE_KEY, { i: { name: 'k', scopes: ['read'], consumerId: created.id, ...key } })).body.data.createApiKey.secret as string;
  };

  it('a DAY quota refuses the 4th of 3 until 00:00 UTC, says so, and admits again after midnight', async () => {
    now = Date.UTC(2026, 11, 6, 23, 59, 0);
    const secret = await keyUnder({ quotas: [{ points: 3, period: 'DAY' }] });
    for (let i = 0; i < 3; i++) expect((await t.gql(STATION, {}, secret)).status).toBe(200);
    const refused = await t.gql(STATION, {}, secret);
    expect(refused.status).toBe(429);
    expect(refused.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', gate: 'operation', period: 'DAY', limit: 3, remaining: 0 });
    expect(refused.body.errors[0].message).toMatch(/daily quota/);
    // Retry-After counts to midnight: 60 s on this clock
    expect(Math.abs(Number(refused.headers.get('retry-after')) - 60)).toBeLessThanOrEqual(1);
    now = Date.UTC(2026, 11, 7, 0, 0, 1);
    expect((await t.gql(STATION, {}, secret)).status).toBe(200);
  });

  it('a MONTH quota resets on the 1st, not 30 days after first use', async () => {
    now = Date.UTC(2026, 10, 30, 23, 59, 30);
    const secret = await keyUnder({ quotas: [{ points: 2, period: 'MONTH' }] });
    for (let i = 0; i < 2; i++) expect((await t.gql(STATION, {}, secret)).status).toBe(200);
    const refused = await t.gql(STATION, {}, secret);
    expect(refused.status).toBe(429);
    expect(refused.body.errors[0].extensions).toMatchObject({ period: 'MONTH', limit: 2 });
    expect(Math.abs(Number(refused.headers.get('retry-after')) - 30)).toBeLessThanOrEqual(1);
    now = Date.UTC(2026, 11, 1, 0, 0, 5);
    expect((await t.gql(STATION, {}, secret)).status).toBe(200);
  });

  it('several windows are all or nothing: the minute\'s refusal takes nothing from the hour, and rateLimit lists every window', async () => {
    now = Date.UTC(2026, 11, 6, 12, 0, 0);
    const secret = await keyUnder(
      { budgets: [{ points: 5, duration: 3600 }, { points: 3, duration: 60 }], quotas: [{ points: 100, period: 'DAY' }] },
      { budget: { points: 50, duration: 600 } },
    );
    for (let i = 0; i < 3; i++) expect((await t.gql(STATION, {}, secret)).status).toBe(200);
    const refused = await t.gql(STATION, {}, secret);
    expect(refused.status).toBe(429);
    expect(refused.body.errors[0].extensions).toMatchObject({ limit: 3, duration: 60 });
    const status = await t.gql('{ rateLimit { limit remaining windows { limit window period used remaining owner } } }', {}, secret);
    expect(status.body.data.rateLimit).toEqual({
      limit: 3,
      remaining: 0,
      windows: [
        { limit: 5, window: 3600, period: null, used: 3, remaining: 2, owner: 'CONSUMER' },
        { limit: 3, window: 60, period: null, used: 3, remaining: 0, owner: 'CONSUMER' },
        { limit: 100, window: 86_400, period: 'DAY', used: 3, remaining: 97, owner: 'CONSUMER' },
        { limit: 50, window: 600, period: null, used: 3, remaining: 47, owner: 'KEY' },
      ],
    });
    expect(refused.headers.get('ratelimit-policy')?.replace(/;pk=:[^:]*:/g, '')).toBe('"budget";q=5;w=3600, "budget-60s";q=3;w=60, "quota-day";q=100;w=86400, "key-600s";q=50;w=600');
    // An admin reads the same counters through the consumer (its shared windows; a key's own cap is the key's).
    const read = async () => (await t.gql('query($id: ID!) { consumer(id: $id) { windows { limit window period used remaining owner } } }', { id: consumerId })).body.data.consumer.windows;
    const windows = await read();
    expect(windows).toEqual(status.body.data.rateLimit.windows.filter((w: { owner: string }) => w.owner === 'CONSUMER'));
    // Reading spends nothing.
    expect(await read()).toEqual(windows);
  });
});
