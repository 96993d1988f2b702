import Redis from 'ioredis';
import { ApolloServer } from '@apollo/server';
import { startStandaloneServer } from '@apollo/server/standalone';
import { createTollgate } from '../../src/index';
import { flushTestRedis, openTestDatabase, startTestServer, testConfig, type TestDatabase, type TestServer } from '../support/harness';
import { storeBackends, testRedisUrl } from '../support/services';
import { CLOSED_PORT } from '../support/private-redis';
import { until } from '../support/wait';

// MAX_CONCURRENT_PER_KEY (issue 27): the N-th request of a key in flight passes, the N+1-th is
// refused 429 with Retry-After — across instances on Redis — and every slot comes back whatever
// ends the request: an answer, an error, the request deadline, or the client hanging up.
// Requests are held in flight by holding the embedded database (PGlite runs one statement at a
// time: an open transaction keeps every other query waiting), with the key already cached.
const STATION = '{ station(id: "LHR") { name } }';

/** Holds the database until released: every query of the server waits behind it. */
async function holdDatabase(db: TestDatabase) {
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let started!: () => void;
  const begun = new Promise<void>((resolve) => (started = resolve));
  const done = db.db.transaction(async () => {
    started();
    await held;
  });
  await begun;
  return async () => {
    release();
    await done;
  };
}

type Sent = { response: Promise<Response>; abort(): void };

/** A real HTTP request the test can abandon (the client hangs up). */
function send(t: TestServer, secret: string, query = STATION): Sent {
  const controller = new AbortController();
  const response = fetch(`${t.url}/graphql`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'x-api-key': secret },
    body: JSON.stringify({ query }),
    signal: controller.signal,
  });
  response.catch(() => undefined); // an aborted one rejects: the test does not wait for it
  return { response, abort: () => controller.abort() };
}

describe.each(storeBackends())('MAX_CONCURRENT_PER_KEY=2 on the %s store', (store) => {
  let db: TestDatabase;
  let t: TestServer;
  let redis: Redis | undefined;

  beforeAll(async () => {
    if (store === 'redis') {
      await flushTestRedis();
      redis = new Redis(testRedisUrl());
    }
    db = await openTestDatabase('pglite');
    t = await startTestServer({ database: db, store, env: { MAX_CONCURRENT_PER_KEY: '2', REQUEST_TIMEOUT_MS: '2000', KEY_CACHE_TTL_SECONDS: '600' } });
  }, 30_000);
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
    redis?.disconnect();
  });

  /** Requests of a key holding a slot right now, as the store counts them. */
  const inFlight = async (server: TestServer, keyId: string) => {
    if (store === 'memory') return server.server.tollgate.services.concurrency!.inFlight(keyId);
    await redis!.zremrangebyscore(`tg:concurrency:{${keyId}}`, '-inf', Date.now());
    return redis!.zcard(`tg:concurrency:{${keyId}}`);
  };
  const newKey = async (server = t) => {
    const key = await server.createKey({ scopes: ['read'] });
    expect((await server.gql(STATION, {}, key.secret)).status).toBe(200); // cached: admission needs no database
    await until(async () => (await inFlight(server, key.id)) === 0);
    return key;
  };
  /** Two held requests in flight, and a third refused as the client sees it. */
  const expectExactlyTwo = async (key: { secret: string; id: string }, server = t) => {
    const first = send(server, key.secret);
    const second = send(server, key.secret);
    await until(async () => (await inFlight(server, key.id)) === 2);
    const third = await fetch(`${server.url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key.secret }, body: JSON.stringify({ query: STATION }) });
    expect(third.status).toBe(429);
    expect(third.headers.get('retry-after')).toBe('1');
    const body = (await third.json()) as { errors: { extensions: Record<string, unknown> }[] };
    expect(body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', gate: 'concurrency', limit: 2, remaining: 0, retryAfter: 1 });
    return [first, second];
  };

  it('the 2nd in flight passes, the 3rd is refused 429 RATE_LIMITED (gate concurrency, Retry-After: 1); answered, both slots come back', async () => {
    const key = await newKey();
    const release = await holdDatabase(db);
    let held: Sent[];
    try {
      held = await expectExactlyTwo(key);
    } finally {
      await release();
    }
    for (const sent of held) expect((await sent.response).status).toBe(200);
    await until(async () => (await inFlight(t, key.id)) === 0);
    // Exactly two again: nothing leaked, nothing extra.
    const again = await holdDatabase(db);
    try {
      held = await expectExactlyTwo(key);
    } finally {
      await again();
    }
    for (const sent of held) expect((await sent.response).status).toBe(200);
  });

  it('a request answered with an error gives its slot back (a resolver\'s error, a validation error)', async () => {
    const key = await newKey();
    const failing = ['{ stations(first: 1, after: "not-a-cursor") { edges { node { id } } } }', '{ station(id: "LHR") { noSuchField } }'];
    for (let round = 0; round < 2; round++) {
      const answers = await Promise.all(failing.map(async (query) => (await (await send(t, key.secret, query).response).json()) as { errors?: { extensions: { code: string } }[] }));
      expect(answers.map((a) => a.errors?.[0].extensions.code)).toEqual(['BAD_USER_INPUT', 'GRAPHQL_VALIDATION_FAILED']);
    }
    await until(async () => (await inFlight(t, key.id)) === 0);
    const release = await holdDatabase(db);
    try {
      await expectExactlyTwo(key);
    } finally {
      await release();
    }
  });

  it('a client that hangs up gives its slot back at once, while its request still waits', async () => {
    const key = await newKey();
    const release = await holdDatabase(db);
    try {
      const held = await expectExactlyTwo(key);
      for (const sent of held) sent.abort();
      // The database is still held: the requests have not finished, but their clients are gone.
      await until(async () => (await inFlight(t, key.id)) === 0);
      await expectExactlyTwo(key);
    } finally {
      await release();
    }
  });

  it('a request past REQUEST_TIMEOUT_MS is answered 503 and gives its slot back', async () => {
    const strict = await startTestServer({ database: db, store, env: { MAX_CONCURRENT_PER_KEY: '2', REQUEST_TIMEOUT_MS: '300', KEY_CACHE_TTL_SECONDS: '600' } });
    try {
      const key = await newKey(strict);
      const release = await holdDatabase(db);
      try {
        const held = await expectExactlyTwo(key, strict);
        for (const sent of held) expect((await sent.response).status).toBe(503);
        // Still held: the deadline, not the database, freed them.
        await until(async () => (await inFlight(strict, key.id)) === 0);
        const more = await expectExactlyTwo(key, strict);
        for (const sent of more) expect((await sent.response).status).toBe(503);
      } finally {
        await release();
      }
    } finally {
      await strict.close();
    }
  });

  it('the refusal is counted: in the key\'s usage history as gate concurrency, and in the metrics', async () => {
    const key = await newKey();
    const release = await holdDatabase(db);
    try {
      await expectExactlyTwo(key);
    } finally {
      await release();
    }
    await t.server.tollgate.services.usage.writer!.flush();
    const from = new Date(Date.now() - 3_600_000).toISOString();
    const to = new Date(Date.now() + 60_000).toISOString();
    const res = await t.gql(`{ apiKey(id: "${key.id}") { usageHistory(from: "${from}", to: "${to}", granularity: DAY) { refused refusals { gate coordinate count } } } }`);
    expect(res.body.data.apiKey.usageHistory).toEqual([{ refused: 1, refusals: [{ gate: 'concurrency', coordinate: null, count: 1 }] }]);
    expect((await t.server.metrics.render()).body).toMatch(/tollgate_rate_limit_rejections_total\{gate="concurrency",coordinate=""\} [1-9]/);
  });

  it('the keys of one consumer share its limit: one in flight on each of two keys, a third request of either is refused', async () => {
    const consumer = await t.gql('mutation($i: CreateConsumerInput!) { createConsumer(input: $i) { id } }', { i: { name: `concurrency ${store}` } });
    const consumerId = consumer.body.data.createConsumer.id as string;
    const keys = [];
    for (let i = 0; i < 2; i++) {
      const created = await t.gql('mutation($i: CreateApiKeyInput!) { createApiKey(input: $i) { secret apiKey { id } } }', { i: { name: `k${i}`, scopes: ['read'], consumerId } });
      const key = { secret: created.body.data.createApiKey.secret as string, id: created.body.data.createApiKey.apiKey.id as string };
      expect((await t.gql(STATION, {}, key.secret)).status).toBe(200);
      keys.push(key);
    }
    const release = await holdDatabase(db);
    try {
      const held = keys.map((key) => send(t, key.secret));
      await until(async () => (await inFlight(t, consumerId)) === 2);
      for (const key of keys) {
        const refused = await t.gql(STATION, {}, key.secret);
        expect(refused.status).toBe(429);
        expect(refused.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', gate: 'concurrency' });
      }
      await release();
      for (const sent of held) expect((await sent.response).status).toBe(200);
    } finally {
      await release();
    }
  });

  it('a slot an instance never gave back (it died) lapses at its deadline: REQUEST_TIMEOUT_MS + 1 s', async () => {
    // Not too short a timeout: the slots must still be held when the 429 below is asked for, and
    // a loaded machine's first request (the key's lookup) must not outlive it (200 ms answered it
    // 503 with two runs at once; 1 s left two seconds for two takes and a request).
    const strict = await startTestServer({ database: db, store, env: { MAX_CONCURRENT_PER_KEY: '2', REQUEST_TIMEOUT_MS: '5000', KEY_CACHE_TTL_SECONDS: '600' } });
    try {
      const key = await newKey(strict);
      const gate = strict.server.tollgate.services.concurrency!;
      // What a crashed instance leaves behind: two slots taken, never released. Their deadlines
      // are at least REQUEST_TIMEOUT_MS + 1 s after this moment.
      const abandoned = Date.now();
      await gate.acquire(key.id);
      await gate.acquire(key.id);
      expect((await strict.gql(STATION, {}, key.secret)).status).toBe(429);
      await until(async () => (await strict.gql(STATION, {}, key.secret)).status === 200, 20_000);
      expect(Date.now() - abandoned).toBeGreaterThanOrEqual(5_990);
    } finally {
      await strict.close();
    }
  });

  if (store === 'redis') {
    it('counts across instances: one in flight on each of two instances, the third is refused on either', async () => {
      const other = await startTestServer({ database: db, store, env: { MAX_CONCURRENT_PER_KEY: '2', REQUEST_TIMEOUT_MS: '2000', KEY_CACHE_TTL_SECONDS: '600' } });
      try {
        const key = await newKey();
        expect((await other.gql(STATION, {}, key.secret)).status).toBe(200);
        const release = await holdDatabase(db);
        try {
          const held = [send(t, key.secret), send(other, key.secret)];
          await until(async () => (await inFlight(t, key.id)) === 2);
          for (const server of [t, other]) {
            const refused = await server.gql(STATION, {}, key.secret);
            expect(refused.status).toBe(429);
            expect(refused.body.errors[0].extensions.gate).toBe('concurrency');
          }
          await release();
          for (const sent of held) expect((await sent.response).status).toBe(200);
        } finally {
          await release();
        }
      } finally {
        await other.close();
      }
    });
  }
});

describe('MAX_CONCURRENT_PER_KEY unset (the default)', () => {
  it('no gate, so no store call: 20 requests of one key at once all pass', async () => {
    const db = await openTestDatabase('pglite');
    const t = await startTestServer({ database: db, env: { KEY_CACHE_TTL_SECONDS: '600' } });
    try {
      expect(t.server.tollgate.services.concurrency).toBeNull();
      const key = await t.createKey({ scopes: ['read'] });
      const answers = await Promise.all(Array.from({ length: 20 }, () => send(t, key.secret).response));
      for (const answer of answers) expect(answer.status).toBe(200);
    } finally {
      await t.close();
      await db.dispose();
    }
  });
});

describe('MAX_CONCURRENT_PER_KEY for a library user on Apollo\'s standalone server', () => {
  it('tollgate.context({ req, res }) gives the slot back when the client hangs up, and when the response is sent', async () => {
    let open!: () => void;
    const gate = new Promise<void>((resolve) => (open = resolve));
    const tollgate = await createTollgate({ config: testConfig({ DATA_DIR: 'memory://', LOG_LEVEL: 'silent', MAX_CONCURRENT_PER_KEY: '2' }), printAdminKey: false });
    const server = new ApolloServer({ schema: tollgate.schema({ typeDefs: 'type Query { slow: String }', resolvers: { Query: { slow: async () => (await gate, 'done') } } }), plugins: tollgate.plugins });
    const { url } = await startStandaloneServer(server, { context: tollgate.context, listen: { port: 0, host: '127.0.0.1' } });
    try {
      const created = await tollgate.services.keys.create({ name: 'owner', scopes: ['read'] }, null);
      if (!created.ok) throw new Error(created.message);
      const { secret, key } = created.value;
      const post = (signal?: AbortSignal) => fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': secret }, body: JSON.stringify({ query: '{ slow }' }), signal });
      const inFlight = () => tollgate.services.concurrency!.inFlight(key.id);
      const controllers = [new AbortController(), new AbortController()];
      for (const c of controllers) post(c.signal).catch(() => undefined);
      await until(() => inFlight() === 2);
      const refused = await post();
      expect(refused.status).toBe(429);
      expect(refused.headers.get('retry-after')).toBe('1');
      for (const c of controllers) c.abort();
      await until(() => inFlight() === 0); // the resolvers still wait: the hang-up gave them back
      const answered = [post(), post()];
      await until(() => inFlight() === 2);
      expect((await post()).status).toBe(429);
      open();
      for (const res of await Promise.all(answered)) expect(await res.json()).toMatchObject({ data: { slow: 'done' } });
      await until(() => inFlight() === 0);
    } finally {
      open();
      await server.stop();
      await tollgate.close();
    }
  });
});

describe('MAX_CONCURRENT_PER_KEY while Redis does not answer (LIMITS_ON_STORE_FAILURE)', () => {
  let db: TestDatabase;
  let url: string;
  beforeAll(async () => {
    db = await openTestDatabase('pglite');
    url = `redis://127.0.0.1:${CLOSED_PORT}`; // nothing listens: every command fails at once
  }, 30_000);
  afterAll(async () => {
    await db?.dispose();
  });

  it('insurance: each instance holds the limit in its own memory (2 in flight, the 3rd 429), and the failure is counted', async () => {
    const t = await startTestServer({ database: db, env: { REDIS_URL: url, LIMITS_ON_STORE_FAILURE: 'insurance', MAX_CONCURRENT_PER_KEY: '2', KEY_CACHE_TTL_SECONDS: '600' } });
    try {
      const key = await t.createKey({ scopes: ['read'] });
      expect((await t.gql(STATION, {}, key.secret)).status).toBe(200);
      const release = await holdDatabase(db);
      try {
        const held = [send(t, key.secret), send(t, key.secret)];
        await until(() => t.server.tollgate.services.concurrency!['insurance'].count(key.id) === 2);
        const refused = await t.gql(STATION, {}, key.secret);
        expect(refused.status).toBe(429);
        expect(refused.body.errors[0].extensions.gate).toBe('concurrency');
        await release();
        for (const sent of held) expect((await sent.response).status).toBe(200);
      } finally {
        await release();
      }
      expect((await t.server.metrics.render()).body).toMatch(/tollgate_limiter_store_failures_total\{store="redis",call="concurrency"\} [1-9]/);
    } finally {
      await t.close();
    }
  }, 30_000);

  it('closed: refused 503 SERVICE_UNAVAILABLE, never a 429 that blames the client', async () => {
    const t = await startTestServer({ database: db, env: { REDIS_URL: url, LIMITS_ON_STORE_FAILURE: 'closed', MAX_CONCURRENT_PER_KEY: '2', KEY_CACHE_TTL_SECONDS: '600' } });
    try {
      const key = await t.createKey({ scopes: ['read'] });
      const res = await t.gql(STATION, {}, key.secret);
      expect(res.status).toBe(503);
      expect(res.body.errors[0].extensions.code).toBe('SERVICE_UNAVAILABLE');
    } finally {
      await t.close();
    }
  }, 30_000);
});
