import postgres from 'postgres';

export const hasPostgres = () => process.env.TOLLGATE_TEST_POSTGRES === '1';
export const hasRedis = () => process.env.TOLLGATE_TEST_REDIS === '1';
export const testDatabaseUrl = () => process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A Redis URL whose logical database belongs to this jest worker, so files never share counters. */
export function testRedisUrl(): string {
  const url = new URL(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');
  url.pathname = `/${Number(process.env.JEST_WORKER_ID ?? 1) % 16}`;
  return url.toString();
}

/** The backends a suite runs on: PGlite always; real Postgres when reachable (always in CI). */
export const databaseBackends = (): ('pglite' | 'postgres')[] => (hasPostgres() ? ['pglite', 'postgres'] : ['pglite']);
/** The limiter stores a suite runs on: memory always; Redis when reachable (always in CI). */
export const storeBackends = (): ('memory' | 'redis')[] => (hasRedis() ? ['memory', 'redis'] : ['memory']);

/** `describe` for suites that need Redis; prints why when it cannot run. */
export function describeWithRedis(name: string, fn: () => void) {
  if (hasRedis()) return describe(name, fn);
  return describe(`${name} [skipped: Redis unreachable]`, () => {
    it('needs Redis', () => console.warn(`skipped "${name}": Redis unreachable`));
  });
}

/** A fresh, empty database on the test server for one test file; dropped by the returned function. */
export async function createScratchDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const admin = postgres(testDatabaseUrl(), { max: 1, onnotice: () => {} });
  const name = `tollgate_t_${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  await admin.unsafe(`create database ${name}`);
  const url = new URL(testDatabaseUrl());
  url.pathname = `/${name}`;
  return {
    url: url.toString(),
    async drop() {
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}
