import { mkdtempSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { startRedisCluster, type RedisCluster } from './redis-cluster';

// Decides once per run which real services the suites can use. With CI=true an unreachable
// Postgres or Redis fails the whole run; on a laptop without them the service suites are
// skipped and this says so loudly.
const DEFAULT_DATABASE_URL = 'postgres://postgres@127.0.0.1:5432/test';
const DEFAULT_REDIS_URL = 'redis://127.0.0.1:6379';

function reachable(url: string, defaultPort: number): Promise<boolean> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve) => {
    const socket = net.connect({ host: hostname, port: Number(port || defaultPort), timeout: 2000 });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
    socket.once('error', () => resolve(false));
  });
}

export default async function globalSetup() {
  // Suites append their skips here; the skip reporter prints them at the end of the run.
  process.env.TOLLGATE_SKIP_LOG = path.join(mkdtempSync(path.join(os.tmpdir(), 'tollgate-skips-')), 'skips.jsonl');
  process.env.TEST_DATABASE_URL ??= DEFAULT_DATABASE_URL;
  process.env.TEST_REDIS_URL ??= DEFAULT_REDIS_URL;
  const postgres = await reachable(process.env.TEST_DATABASE_URL, 5432);
  const redis = await reachable(process.env.TEST_REDIS_URL, 6379);
  const missing = [!postgres && `Postgres (${process.env.TEST_DATABASE_URL})`, !redis && `Redis (${process.env.TEST_REDIS_URL})`].filter(Boolean);
  if (missing.length && process.env.CI === 'true') {
    throw new Error(`CI=true and ${missing.join(' and ')} unreachable: the service suites must run in CI. Start them (see .ci/run).`);
  }
  if (missing.length) {
    process.stdout.write(`\n*** SKIPPING service suites: ${missing.join(' and ')} unreachable. Embedded (PGlite + memory) suites still run. ***\n\n`);
  }
  process.env.TOLLGATE_TEST_POSTGRES = postgres ? '1' : '0';
  process.env.TOLLGATE_TEST_REDIS = redis ? '1' : '0';

  // A Redis Cluster: the one given, or three masters and three replicas of our own for this run.
  if (!process.env.TEST_REDIS_CLUSTER_NODES) {
    try {
      const cluster = await startRedisCluster();
      (globalThis as { tollgateCluster?: RedisCluster }).tollgateCluster = cluster;
      process.env.TEST_REDIS_CLUSTER_NODES = cluster.seeds;
    } catch (error) {
      if (process.env.CI === 'true') throw new Error(`CI=true and a local Redis Cluster could not start: ${(error as Error).message}`);
      process.stdout.write(`\n*** SKIPPING Redis Cluster suites: a local cluster could not start (${(error as Error).message}). ***\n\n`);
    }
  }
  process.env.TOLLGATE_TEST_REDIS_CLUSTER = process.env.TEST_REDIS_CLUSTER_NODES ? '1' : '0';
}
