import { execute, parse, type ExecutionResult } from 'graphql';
import { makeExecutableSchema } from '@graphql-tools/schema';
import { randomUUID } from 'node:crypto';
import { FieldGate } from '../../src/gates/field-gate';
import { readFieldPolicies } from '../../src/directives/field-policies';
import { applyRateLimitDirective } from '../../src/directives/rate-limit-directive';
import { createLimiterStore, type LimiterStore, type StoreFailureMode } from '../../src/counting/store';
import { applyRequireScopes, readRequiredScopes } from '../../src/directives/require-scopes';
import type { AuthenticatedKey } from '../../src/keys/types';
import { directiveTypeDefs } from '../../src/graphql/schema';
import { flushTestRedis } from '../support/harness';
import { startTcpProxy } from '../support/tcp-proxy';
import { describeWithRedis, storeBackends, testRedisUrl } from '../support/services';

// A small schema with exact numbers, executed for real against the memory store and real Redis.
const SDL = /* GraphQL */ `
  type Query {
    five: Int @rateLimit(limit: 5, duration: 60)
    other: Int @rateLimit(limit: 5, duration: 60)
    items(first: Int = 10): [Int!]! @rateLimit(limit: 25, duration: 60) @cost(weight: 1) @listSize(slicingArguments: ["first"])
    fifty: Int @rateLimit(limit: 50, duration: 60)
    windows: Int @rateLimit(limit: 3, duration: 60) @rateLimit(limit: 5, duration: 3600)
    things(n: Int!): [Thing!]!
    secret: Int @requireScopes(scopes: ["admin"]) @rateLimit(limit: 1, duration: 60)
    heavy: Heavy @rateLimit(limit: 10, duration: 60)
    filtered(f: F): Int @rateLimit(limit: 5, duration: 60)
  }
  type Heavy @cost(weight: 5) { id: Int }
  input F { term: String }
  type Thing @rateLimit(limit: 30, duration: 60) {
    id: Int!
    label: String
    weight: Int @rateLimit(limit: 1000, duration: 60) @cost(weight: 3)
  }
`;

const resolvers = {
  Query: {
    five: () => 5,
    other: () => 6,
    items: (_: unknown, { first }: { first: number }) => Array.from({ length: first }, (_, i) => i),
    fifty: () => 50,
    windows: () => 1,
    things: (_: unknown, { n }: { n: number }) => Array.from({ length: n }, (_, i) => ({ id: i, label: `#${i}`, weight: i })),
    secret: () => 42,
    heavy: () => ({ id: 1 }),
    filtered: () => 1,
  },
};

function makeKey(scopes: string[] = [], limits: [string, { limit: number; duration: number }[]][] = []): AuthenticatedKey {
  const id = randomUUID();
  return { id, name: 't', scopes, expiresAt: null, limits: new Map(limits), limitCaps: new Map(), owner: id, consumerId: null, planId: null, budgets: null, quotas: [], budgetCaps: [], maxOperationCost: null };
}

function harness(store: LimiterStore) {
  const base = makeExecutableSchema({ typeDefs: [directiveTypeDefs, SDL], resolvers });
  const gate = new FieldGate(store);
  const limited = applyRateLimitDirective(base, { gate, policies: readFieldPolicies(base), requiredScopes: readRequiredScopes(base) });
  const schema = applyRequireScopes(limited.schema);
  const run = (query: string, apiKey: AuthenticatedKey, variables?: Record<string, unknown>) => {
    limited.rememberKey(apiKey);
    return execute({ schema, document: parse(query), contextValue: { apiKey }, variableValues: variables }) as Promise<ExecutionResult>;
  };
  return { gate, run };
}

const codes = (result: ExecutionResult) => (result.errors ?? []).map((e) => e.extensions?.code);

describe.each(storeBackends())('field gates on the %s store', (kind) => {
  let store: LimiterStore;
  let h: ReturnType<typeof harness>;

  beforeAll(async () => {
    if (kind === 'redis') await flushTestRedis();
    store = createLimiterStore({ redis: kind === 'redis' ? testRedisUrl() : undefined, failureMode: 'insurance' });
    await store.ready();
    h = harness(store);
  });
  afterAll(() => store.close());

  it('admits exactly the limit: calls 1-5 pass, call 6 is RATE_LIMITED with the window', async () => {
    const key = makeKey();
    for (let i = 1; i <= 5; i++) expect(await h.run('{ five }', key)).toEqual({ data: { five: 5 } });
    const started = Date.now();
    const refused = await h.run('{ five }', key);
    const finished = Date.now();
    expect(refused.data).toEqual({ five: null });
    const error = refused.errors![0];
    expect(error.path).toEqual(['five']);
    expect(error.extensions).toMatchObject({ code: 'RATE_LIMITED', coordinate: 'Query.five', limit: 5, duration: 60, remaining: 0 });
    const { retryAfter, resetAt } = error.extensions as { retryAfter: number; resetAt: string };
    // Windows slide: the call fits once this minute's bucket has ended and a fifth of its 5 points
    // has faded (12 s more) — between 12 and 72 s from now, and resetAt says the same moment.
    expect(retryAfter).toBeGreaterThanOrEqual(12);
    expect(retryAfter).toBeLessThanOrEqual(72);
    const resetIn = new Date(resetAt).getTime() - started;
    expect(resetIn).toBeGreaterThan(retryAfter * 1000 - 2000);
    expect(resetIn).toBeLessThanOrEqual(retryAfter * 1000 + (finished - started)); // decided at some moment in between
  });

  it('weights by the slicing argument: first: 10 on a 25-point budget admits two calls, not three', async () => {
    const key = makeKey();
    expect(codes(await h.run('{ items(first: 10) }', key))).toEqual([]);
    expect(codes(await h.run('{ items(first: 10) }', key))).toEqual([]);
    expect(codes(await h.run('{ items(first: 10) }', key))).toEqual(['RATE_LIMITED']);
    // the 5 points left are still there for a smaller call
    expect(codes(await h.run('{ items(first: 5) }', key))).toEqual([]);
  });

  it('refuses a negative or absurd slicing value with BAD_USER_INPUT before spending', async () => {
    const key = makeKey();
    for (const first of [-1, 1_000_000_000]) {
      const result = await h.run('query($first: Int) { items(first: $first) }', key, { first });
      expect(codes(result)).toEqual(['BAD_USER_INPUT']);
    }
    expect(codes(await h.run('{ items(first: 25) }', key))).toEqual([]);
  });

  it('refuses a call no window could ever admit, spending nothing', async () => {
    const key = makeKey();
    const result = await h.run('{ items(first: 26) }', key);
    expect(codes(result)).toEqual(['BAD_USER_INPUT']);
    expect(result.errors![0].message).toMatch(/26 points.*25 points/);
    expect(codes(await h.run('{ items(first: 25) }', key))).toEqual([]);
  });

  it('keeps keys and fields independent', async () => {
    const a = makeKey();
    const b = makeKey();
    for (let i = 0; i < 5; i++) await h.run('{ five }', a);
    expect(codes(await h.run('{ five }', a))).toEqual(['RATE_LIMITED']);
    expect(codes(await h.run('{ other }', a))).toEqual([]);
    expect(codes(await h.run('{ five }', b))).toEqual([]);
  });

  it('spends per resolution: aliases and list items each count', async () => {
    const key = makeKey();
    const result = await h.run('{ a: five b: five c: five d: five e: five f: five g: five }', key);
    expect(result.data).toEqual({ a: 5, b: 5, c: 5, d: 5, e: 5, f: null, g: null });
    expect(codes(result)).toEqual(['RATE_LIMITED', 'RATE_LIMITED']);
    // Thing has an object-level @rateLimit(30): 40 items → 30 ids, then errors
    const things = await h.run('{ things(n: 40) { label } }', makeKey());
    expect(codes(things).length).toBe(10);
  });

  it('admits exactly 50 of 200 concurrent calls against limit 50', async () => {
    const key = makeKey();
    const results = await Promise.all(Array.from({ length: 200 }, () => h.run('{ fifty }', key)));
    expect(results.filter((r) => !r.errors).length).toBe(50);
    expect(results.filter((r) => codes(r)[0] === 'RATE_LIMITED').length).toBe(150);
  });

  it('checks every window and never spends the others on a refusal', async () => {
    const key = makeKey();
    for (let i = 0; i < 3; i++) expect(codes(await h.run('{ windows }', key))).toEqual([]);
    const refused = await h.run('{ windows }', key);
    expect(refused.errors![0].extensions).toMatchObject({ code: 'RATE_LIMITED', limit: 3, duration: 60 });
    // the hour window holds exactly the 3 admitted calls: the refusal was given back
    const hour = await store.read(h.gate.limiterFor({ limit: 5, duration: 3600 }), FieldGate.storeKeys(key, 'Query.windows')[0]);
    expect(hour.used).toBe(3);
    const minute = await store.read(h.gate.limiterFor({ limit: 3, duration: 60 }), FieldGate.storeKeys(key, 'Query.windows')[0]);
    expect(minute.used).toBe(3);
  });

  it('applies a per-key override instead of the schema numbers, for that key only', async () => {
    const tight = makeKey([], [['Query.fifty', [{ limit: 2, duration: 60 }]]]);
    expect(codes(await h.run('{ a: fifty b: fifty c: fifty }', tight))).toEqual(['RATE_LIMITED']);
    const normal = makeKey();
    expect(codes(await h.run('{ a: fifty b: fifty c: fifty }', normal))).toEqual([]);
  });

  it('checks scopes before limits: a refused caller spends nothing', async () => {
    const reader = makeKey(['read']);
    expect(codes(await h.run('{ secret }', reader))).toEqual(['FORBIDDEN']);
    const admin: AuthenticatedKey = { ...reader, scopes: ['admin'] };
    expect(codes(await h.run('{ secret }', admin))).toEqual([]);
  });

  // Memory has no round trip to save (nothing to test there); on Redis a list's limited child costs one command.
  if (kind === 'redis') it('sends one Redis command for a list, whatever its length', async () => {
    for (const n of [5, 25, 50]) {
      const key = makeKey();
      const before = store.commands();
      const result = await h.run(`{ things(n: ${n}) { weight } }`, key);
      expect(result.errors).toBeUndefined();
      // Thing.weight: 3 points × n items in one script call (Query.things itself is not limited)
      expect(store.commands() - before).toBe(1);
      const stored = await store.read(h.gate.limiterFor({ limit: 1000, duration: 60 }), FieldGate.storeKeys(key, 'Thing.weight')[0]);
      expect(stored.used).toBe(3 * n);
    }
  });
});

describeWithRedis('field gates shared through Redis', () => {
  beforeAll(() => flushTestRedis());

  it('two instances on one Redis admit exactly the limit together', async () => {
    const stores = [0, 1].map(() => createLimiterStore({ redis: testRedisUrl(), failureMode: 'insurance' }));
    await Promise.all(stores.map((s) => s.ready()));
    const [one, two] = stores.map(harness);
    const key = makeKey();
    const results = await Promise.all(Array.from({ length: 60 }, (_, i) => (i % 2 ? one : two).run('{ fifty }', key)));
    expect(results.filter((r) => !r.errors).length).toBe(50);
    await Promise.all(stores.map((s) => s.close()));
  });

  it('sends one Redis command per window for a 50-item list, whatever its length', async () => {
    const store = createLimiterStore({ redis: testRedisUrl(), failureMode: 'insurance' });
    await store.ready();
    const h = harness(store);
    // Count the commands this instance's client really sends (INFO commandstats is server-wide,
    // and other test files share the server).
    const sent: string[] = [];
    const client = store.redis! as unknown as { sendCommand(command: { name: string }): unknown };
    const original = client.sendCommand.bind(client);
    client.sendCommand = (command) => (sent.push(command.name), original(command));
    await h.run('{ things(n: 1) { weight } }', makeKey()); // loads the limiter's Lua script once
    for (const n of [1, 50]) {
      sent.length = 0;
      const result = await h.run(`{ things(n: ${n}) { weight } }`, makeKey());
      expect(result.errors).toBeUndefined();
      expect(sent.filter((c) => c !== 'script')).toEqual(['evalsha']);
    }
    await store.close();
  });

  it('spends the same weights the operation budget adds up: a type weight, and input values', async () => {
    const h = harness(createLimiterStore({ failureMode: 'insurance' }));
    const key = makeKey();
    // heavy: Heavy @cost(weight: 5) → 5 points a call against 10: the 2nd passes, the 3rd is refused
    for (let i = 1; i <= 2; i++) expect(codes(await h.run('{ heavy { id } }', key))).toEqual([]);
    expect(codes(await h.run('{ heavy { id } }', key))).toEqual(['RATE_LIMITED']);
    // filtered: weight 1 + the input object F 1 = 2 points against 5: two pass, the 3rd is refused
    for (let i = 1; i <= 2; i++) expect(codes(await h.run('{ filtered(f: { term: "x" }) }', key))).toEqual([]);
    expect(codes(await h.run('{ filtered(f: { term: "x" }) }', key))).toEqual(['RATE_LIMITED']);
    // ...while without the input value a call is 1 point: the one point left still admits it
    expect(codes(await h.run('{ filtered }', key))).toEqual([]);
  });

  describe.each<[StoreFailureMode, string | undefined]>([
    ['insurance', undefined],
    ['open', undefined],
    ['closed', 'SERVICE_UNAVAILABLE'],
  ])('Redis down in %s mode', (mode, expectedCode) => {
    // The engine's decision, seen through execute(); the HTTP answer (503 + Retry-After) for the
    // same outage is asserted over HTTP in test/faults/redis-faults.test.ts.
    it(`${expectedCode ? 'refuses the field with SERVICE_UNAVAILABLE' : 'keeps answering'}, and limits again once Redis is back`, async () => {
      // Redis behind a proxy this test can cut: the machine's Redis stays up for everyone else.
      const real = new URL(testRedisUrl());
      const proxy = await startTcpProxy({ host: real.hostname, port: Number(real.port || 6379) });
      const store = createLimiterStore({ redis: `redis://127.0.0.1:${proxy.port}${real.pathname}`, failureMode: mode });
      try {
        await store.ready();
        const h = harness(store);
        const key = makeKey();
        expect(codes(await h.run('{ five }', key))).toEqual([]);
        await proxy.cut();
        // the client has noticed (bounded: a client that never notices fails the test, not the run)
        const noticed = Date.now() + 5000;
        while (store.redis!.status === 'ready' && Date.now() < noticed) await new Promise((r) => setTimeout(r, 10));
        expect(store.redis!.status).not.toBe('ready');
        const during = await h.run('{ five }', key);
        if (expectedCode) {
          expect(codes(during)).toEqual([expectedCode]);
          expect(during.errors![0].extensions).toMatchObject({ retryAfter: 1, http: { status: 503 } });
        } else {
          expect(codes(during)).toEqual([]);
        }
        expect(JSON.stringify(during)).not.toMatch(/ECONNRESET|ECONNREFUSED|Stream isn't writeable|not ready/);
        if (mode === 'insurance') {
          // the in-memory insurance limiter keeps limiting on this instance
          for (let i = 0; i < 5; i++) await h.run('{ five }', key);
          expect(codes(await h.run('{ five }', key))).toEqual(['RATE_LIMITED']);
        }
        await proxy.restore();
        // reconnects by itself: wait until a command goes through again
        const deadline = Date.now() + 5000;
        while (!(await store.healthy()) && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
        expect(await store.healthy()).toBe(true);
        const fresh = makeKey();
        for (let i = 0; i < 5; i++) expect(codes(await h.run('{ five }', fresh))).toEqual([]);
        expect(codes(await h.run('{ five }', fresh))).toEqual(['RATE_LIMITED']);
        const stored = await store.read(h.gate.limiterFor({ limit: 5, duration: 60 }), FieldGate.storeKeys(fresh, 'Query.five')[0]);
        expect(stored.used).toBe(5);
      } finally {
        await store.close();
        await proxy.close();
      }
    });
  });
});
