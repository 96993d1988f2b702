import { Writable } from 'node:stream';
import Redis from 'ioredis';
import { loadConfig, type Config } from '../../src/config';
import { openDatabase, type DatabaseHandle } from '../../src/db/client';
import { createServer, type Server } from '../../src/app/server';
import { createScratchDatabase, testClusterNodes, testRedisUrl } from './services';

export type Backend = { database: 'pglite' | 'postgres'; store: 'memory' | 'redis' };

/** A database for one test file, with a counter of the SQL statements sent through Drizzle. */
export type TestDatabase = DatabaseHandle & { queries: string[]; dispose(): Promise<void> };

/**
 * The statements a test database saw, less the usage writer's: it adds counted usage on a timer
 * (USAGE_FLUSH_SECONDS) and prunes it, never on a request's path, so a count of "queries a request
 * made" must not depend on whether its tick fell inside the test.
 */
export const requestQueries = (db: TestDatabase) => db.queries.filter((q) => !/\btollgate\.usage(_fields|_refusals)?\b/.test(q));

export async function openTestDatabase(kind: 'pglite' | 'postgres'): Promise<TestDatabase> {
  const queries: string[] = [];
  const scratch = kind === 'postgres' ? await createScratchDatabase() : null;
  const handle = await openDatabase({ url: scratch?.url, dataDir: 'memory://', onQuery: (q) => queries.push(q) });
  return {
    ...handle,
    queries,
    async dispose() {
      await handle.close();
      await scratch?.drop();
    },
  };
}

export type TestServer = {
  server: Server;
  url: string;
  adminKey: string;
  config: Config;
  logs: string[];
  gql(query: string, variables?: Record<string, unknown>, key?: string | null, headers?: Record<string, string>): Promise<GqlResponse>;
  /** Creates a key through the service (as the CLI would) and returns its secret and id. */
  createKey(input?: { name?: string; scopes?: string[]; limits?: { coordinate: string; limit: number; duration: number }[]; budget?: { points: number; duration: number } }): Promise<{ secret: string; id: string }>;
  close(): Promise<void>;
};

export type GqlResponse = { status: number; headers: Headers; body: any };

/** Where a test server keeps its counters: memory, the test Redis, or the test Redis Cluster. */
export type StoreKind = 'memory' | 'redis' | 'cluster';

/** Config for tests: env-free, generous IP limits so suites never trip them by accident. */
export function testConfig(overrides: Record<string, string> = {}, store: StoreKind = 'memory'): Config {
  return loadConfig({
    NODE_ENV: 'test',
    PORT: '0',
    LOG_LEVEL: 'info',
    IP_LIMIT: '1000000',
    AUTH_FAILURE_LIMIT: '1000000',
    // Generous on a loaded 2-core machine: a timeout would silently move counting to insurance.
    LIMITER_TIMEOUT_MS: '2000',
    ...(store === 'redis' ? { REDIS_URL: testRedisUrl() } : {}),
    ...(store === 'cluster' ? { REDIS_CLUSTER_NODES: testClusterNodes() } : {}),
    ...overrides,
  });
}

export async function flushTestRedis(): Promise<void> {
  const redis = new Redis(testRedisUrl(), { lazyConnect: true, maxRetriesPerRequest: 1 });
  await redis.connect();
  await redis.flushdb();
  redis.disconnect();
}

export async function startTestServer(options: {
  database: TestDatabase;
  store?: StoreKind;
  env?: Record<string, string>;
  gates?: boolean;
  now?: () => number;
}): Promise<TestServer> {
  const config = testConfig(options.env, options.store ?? 'memory');
  const logs: string[] = [];
  const logStream = new Writable({
    write(chunk, _enc, done) {
      logs.push(...String(chunk).split('\n').filter(Boolean));
      done();
    },
  });
  const server = await createServer({ config, database: options.database, logStream, gates: options.gates, now: options.now });
  const url = await server.listen();
  // Each server gets its own admin key; in a shared database the bootstrap only happens once.
  let adminKey = await server.tollgate.createFirstAdminKey();
  if (!adminKey) {
    const created = await server.keys.create({ name: 'test admin', scopes: ['admin', 'read', 'write'] }, null);
    if (!created.ok) throw new Error(created.message);
    adminKey = created.value.secret;
  }

  const defaultKey = adminKey;
  const gql: TestServer['gql'] = async (query, variables, key = defaultKey, headers = {}) => {
    const response = await fetch(`${url}/graphql`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...(key ? { 'x-api-key': key } : {}), ...headers },
      body: JSON.stringify({ query, variables }),
    });
    const text = await response.text();
    let body: unknown;
    try {
      body = JSON.parse(text);
    } catch {
      body = text;
    }
    return { status: response.status, headers: response.headers, body };
  };

  return {
    server,
    url,
    adminKey: defaultKey,
    config,
    logs,
    gql,
    async createKey(input = {}) {
      const result = await server.keys.create({ name: input.name ?? 'test key', scopes: input.scopes ?? ['read'], limits: input.limits, budget: input.budget }, null);
      if (!result.ok) throw new Error(result.message);
      return { secret: result.value.secret, id: result.value.key.id };
    },
    close: () => server.close(),
  };
}

type ServerOptions = Omit<Parameters<typeof startTestServer>[0], 'database'> & { backend?: 'pglite' | 'postgres' };

/** Runs `fn` against a server on a fresh database, then closes both whatever happens. */
export async function withTestServer<T>(options: ServerOptions, fn: (t: TestServer, db: TestDatabase) => Promise<T>): Promise<T> {
  const db = await openTestDatabase(options.backend ?? 'pglite');
  const t = await startTestServer({ ...options, database: db }).catch(async (error) => {
    await db.dispose();
    throw error;
  });
  try {
    return await fn(t, db);
  } finally {
    await t.close();
    await db.dispose();
  }
}

/** One server on a fresh database for a whole describe block: started before, closed after. */
export function useTestServer(options: ServerOptions = {}): { readonly t: TestServer; readonly db: TestDatabase } {
  let db: TestDatabase | undefined;
  let t: TestServer | undefined;
  beforeAll(async () => {
    db = await openTestDatabase(options.backend ?? 'pglite');
    t = await startTestServer({ ...options, database: db });
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });
  return {
    get t() {
      return t!;
    },
    get db() {
      return db!;
    },
  };
}
