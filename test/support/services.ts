import { execFileSync } from 'node:child_process';
import { appendFileSync } from 'node:fs';
import postgres from 'postgres';

export const hasPostgres = () => process.env.TOLLGATE_TEST_POSTGRES === '1';
export const hasRedis = () => process.env.TOLLGATE_TEST_REDIS === '1';
export const hasRedisCluster = () => process.env.TOLLGATE_TEST_REDIS_CLUSTER === '1';
/** The test Redis Cluster's seed nodes (REDIS_CLUSTER_NODES's form); global-setup starts one if none is given. */
export const testClusterNodes = () => process.env.TEST_REDIS_CLUSTER_NODES ?? '';
export const testDatabaseUrl = () => process.env.TEST_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/**
 * A Redis URL whose logical database belongs to this jest worker, so files never share counters.
 * The Redis is this run's own (global-setup starts it), so another run's workers never flush it.
 */
export function testRedisUrl(): string {
  const url = new URL(process.env.TEST_REDIS_URL ?? 'redis://127.0.0.1:6379');
  url.pathname = `/${Number(process.env.JEST_WORKER_ID ?? 1) % 16}`;
  return url.toString();
}

/**
 * The backends a suite runs on: PGlite always; real Postgres when reachable (always in CI). A
 * missing row is recorded as a skip, so the run's summary says the suite ran on fewer backends.
 */
export function databaseBackends(): ('pglite' | 'postgres')[] {
  if (hasPostgres()) return ['pglite', 'postgres'];
  recordSkip(`${callerFile()} on postgres`, `Postgres (${process.env.TEST_DATABASE_URL}) unreachable`);
  return ['pglite'];
}
/** The limiter stores a suite runs on: memory always; Redis when reachable (always in CI). */
export function storeBackends(): ('memory' | 'redis')[] {
  if (hasRedis()) return ['memory', 'redis'];
  recordSkip(`${callerFile()} on redis`, `Redis (${process.env.TEST_REDIS_URL}) unreachable`);
  return ['memory'];
}

function callerFile(): string {
  const line = new Error().stack?.split('\n').find((l) => /\.test\.ts/.test(l)) ?? '';
  return /([\w./-]+\.test\.ts)/.exec(line)?.[1]?.replace(/^.*\/test\//, 'test/') ?? 'a suite';
}

/**
 * `describe` for a suite that needs something this machine may lack. Without it the suite is
 * reported by jest as skipped (never as passed), and the run's last lines say which and why
 * (test/support/skip-reporter.js). With CI=true it is never skipped: it fails, naming what is missing.
 */
export function describeIf(available: boolean, needs: string, name: string, fn: () => void) {
  if (available) return describe(name, fn);
  if (process.env.CI === 'true') {
    return describe(name, () => {
      it(`needs ${needs}`, () => {
        throw new Error(`CI=true and ${needs} is unavailable: this suite must run in CI`);
      });
    });
  }
  recordSkip(name, `${needs} unavailable`);
  return describe.skip(`${name} [skipped: ${needs} unavailable]`, fn);
}

/** `describe` for suites that need Redis (see describeIf). */
export const describeWithRedis = (name: string, fn: () => void) => describeIf(hasRedis(), `Redis (${process.env.TEST_REDIS_URL})`, name, fn);

/** `describe` for suites that need a Redis Cluster (see describeIf). */
export const describeWithRedisCluster = (name: string, fn: () => void) => describeIf(hasRedisCluster(), 'a Redis Cluster (TEST_REDIS_CLUSTER_NODES, or redis-server to start one)', name, fn);

/** Skips are appended to a file the skip reporter reads at the end of the run. */
function recordSkip(name: string, reason: string) {
  const file = process.env.TOLLGATE_SKIP_LOG;
  if (file) appendFileSync(file, `${JSON.stringify({ name, reason })}\n`);
}

/** Whether the redis-server binary is installed (tests that start Redis processes of their own). */
export function hasRedisServerBinary(): boolean {
  try {
    execFileSync('redis-server', ['--version'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/**
 * A fresh, empty database on the test server for one test file; dropped by the returned function.
 * Named with the run's id, so the run's teardown drops it even if the file never got to.
 */
export async function createScratchDatabase(): Promise<{ url: string; drop(): Promise<void> }> {
  const admin = postgres(testDatabaseUrl(), { max: 1, onnotice: () => {} });
  const name = `tollgate_t_${process.env.TOLLGATE_RUN_ID ?? process.pid}_${Math.random().toString(36).slice(2, 8)}`;
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
