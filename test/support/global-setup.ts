import { existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { childrenOf, reapAbandonedRuns, reapRun } from './processes';
import { startRedisCluster, type RedisCluster } from './redis-cluster';
import { startRedisServer, type RedisServer } from './redis-server';
import { hasRedisServerBinary } from './services';
import { buildAdminConsoleIfStale } from './admin-console-build';

// Decides once per run which real services the suites can use. With CI=true an unreachable
// Postgres or Redis fails the whole run; on a laptop without them the service suites are
// skipped and this says so loudly.
//
// Every run gets names of its own, so two runs on one machine (two clones, a developer beside
// CI) never share state: a Postgres database created here and dropped at the end, a redis-server
// of its own (16 logical databases that no other run flushes), and a folder for its pids
// (processes.ts). Its teardown — global-teardown.ts, or SIGINT/SIGTERM of the run — kills and
// drops all of it.
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

/** Postgres databases of this run: its own and the suites' scratch ones (named with the run id). */
async function dropRunDatabases(adminUrl: string, runId: string) {
  const admin = postgres(adminUrl, { max: 1, onnotice: () => {}, connect_timeout: 5 });
  try {
    const rows = await admin<{ datname: string }[]>`select datname from pg_database where datname like ${`tollgate\\_%${runId}%`}`;
    for (const { datname } of rows) await admin.unsafe(`drop database if exists "${datname}" with (force)`);
  } finally {
    await admin.end({ timeout: 1 });
  }
}

/**
 * Runs a test started inside this one (interrupted-runs starts a jest of its own): their folders
 * sit in this run's folder, under a temporary folder of the test's, and their processes carry their
 * own run's mark, not this one's. Once this run's teardown has killed them (their jest is one of
 * the processes it recorded), they are abandoned runs, cleaned before this folder goes.
 */
export async function cleanNestedRuns(runDir: string, adminDatabaseUrl?: string) {
  let folders: string[] = [];
  try {
    folders = readdirSync(runDir, { withFileTypes: true }).filter((e) => e.isDirectory()).map((e) => path.join(runDir, e.name));
  } catch {
    return;
  }
  const list = (folder: string) => {
    try {
      return readdirSync(folder);
    } catch {
      return []; // gone meanwhile
    }
  };
  const nestedJests = () => folders.flatMap(list).map((n) => /^tollgate-run-(\d+)_/.exec(n)?.[1]).filter((pid) => pid && existsSync(`/proc/${pid}`));
  // A jest just killed is gone once its new parent has reaped it: moments.
  for (const deadline = Date.now() + 2_000; nestedJests().length > 0 && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
  for (const folder of folders) await cleanAbandonedRuns(folder, adminDatabaseUrl);
}

/** Kills what runs that ended without their teardown left, drops their databases, removes their folders. */
export async function cleanAbandonedRuns(tmp: string, adminDatabaseUrl?: string) {
  for (const abandoned of reapAbandonedRuns(tmp)) {
    if (adminDatabaseUrl) await dropRunDatabases(adminDatabaseUrl, abandoned.runId).catch(() => undefined);
    rmSync(abandoned.dir, { recursive: true, force: true });
  }
}

type RunState = { cluster?: RedisCluster; redis?: RedisServer; teardown(): Promise<void> };

export default async function globalSetup() {
  // The admin console's tests serve and measure its built files.
  buildAdminConsoleIfStale();
  const runId = `${process.pid}_${Math.random().toString(36).slice(2, 8)}`;
  const machineTmp = os.tmpdir();
  const runDir = mkdtempSync(path.join(machineTmp, `tollgate-run-${runId}-`));
  process.env.TOLLGATE_RUN_ID = runId;
  process.env.TOLLGATE_RUN_DIR = runDir;
  // Every temporary folder the suites and their children make (clusters, data folders, packed
  // apps, browser profiles) lands inside the run's folder, and goes with it — even after a run
  // that was killed (cleanAbandonedRuns).
  process.env.TMPDIR = runDir;
  // Suites append their skips here; the skip reporter prints them at the end of the run.
  process.env.TOLLGATE_SKIP_LOG = path.join(runDir, 'skips.jsonl');

  const state: RunState = { teardown: async () => {} };
  let adminDatabaseUrl: string | undefined;
  // One teardown, however many ask for it, and each caller waits for all of it: a signal during
  // setup kills the Redis processes being started, the setup then fails, and jest exits as soon as
  // the setup's own call returns — before the database was dropped, when that call returned early.
  let tearingDown: Promise<void> | undefined;
  state.teardown = () =>
    (tearingDown ??= (async () => {
      await state.cluster?.stop();
      reapRun(); // the run's redis-server, and whatever a test or a dead worker left alive
      // interrupted-runs.test.ts: the rest of a teardown as slow as a loaded machine's (the
      // databases to drop), while jest starts workers in place of the killed ones.
      const delayMs = Number(process.env.TOLLGATE_TEARDOWN_DELAY_MS ?? 0);
      if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs));
      await cleanNestedRuns(runDir, adminDatabaseUrl);
      if (adminDatabaseUrl) await dropRunDatabases(adminDatabaseUrl, runId).catch((e: Error) => process.stderr.write(`could not drop this run's databases: ${e.message}\n`));
      rmSync(runDir, { recursive: true, force: true });
    })());
  (globalThis as { tollgateRun?: RunState }).tollgateRun = state;

  // Interrupted (Ctrl-C, a CI job cancelled): stop the workers first so none starts anything
  // more, then the same teardown as a finished run, then exit as the signal would have.
  const killWorkers = () => {
    for (const worker of childrenOf(process.pid)) {
      try {
        process.kill(worker, 'SIGKILL');
      } catch {
        // gone
      }
    }
  };
  let interrupted = false;
  const onSignal = (signal: NodeJS.Signals) => {
    // jest starts a worker in place of each one killed here and gives it the next test file; the
    // workers it starts from now on see this and end before the file starts anything
    // (after-each-file.ts): what they started while the teardown ran outlived the run.
    process.env.TOLLGATE_RUN_INTERRUPTED = '1';
    killWorkers();
    // A second signal (Ctrl-C twice, a CI cancel repeated) must not end the teardown half-way:
    // that left a redis-server and a database behind.
    if (interrupted) return;
    interrupted = true;
    void state.teardown().finally(() => {
      // Once more on the way out, for a worker started before the flag was set.
      killWorkers();
      reapRun();
      rmSync(runDir, { recursive: true, force: true });
      process.exit(signal === 'SIGINT' ? 130 : 143);
    });
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);

  try {
    const givenDatabaseUrl = process.env.TEST_DATABASE_URL ?? DEFAULT_DATABASE_URL;
    const givenRedisUrl = process.env.TEST_REDIS_URL;
    const postgresUp = await reachable(givenDatabaseUrl, 5432);
    // Whatever an earlier run on this machine could not clean (it was SIGKILLed): gone now.
    await cleanAbandonedRuns(machineTmp, postgresUp ? givenDatabaseUrl : undefined);
    if (postgresUp) {
      // This run's own database on the given server; TEST_DATABASE_URL names it from here on.
      adminDatabaseUrl = givenDatabaseUrl;
      const name = `tollgate_run_${runId}`;
      const admin = postgres(givenDatabaseUrl, { max: 1, onnotice: () => {}, connect_timeout: 5 });
      try {
        await admin.unsafe(`create database ${name}`);
      } finally {
        await admin.end({ timeout: 1 });
      }
      const url = new URL(givenDatabaseUrl);
      url.pathname = `/${name}`;
      process.env.TEST_DATABASE_URL = url.toString();
    } else {
      process.env.TEST_DATABASE_URL = givenDatabaseUrl;
    }
    // A redis-server of this run's own unless one is given (TEST_REDIS_URL) or none is installed.
    if (!givenRedisUrl && hasRedisServerBinary()) {
      const dir = path.join(runDir, 'redis');
      mkdirSync(dir);
      state.redis = await startRedisServer(dir);
      process.env.TEST_REDIS_URL = `redis://127.0.0.1:${state.redis.port}`;
    } else {
      process.env.TEST_REDIS_URL = givenRedisUrl ?? DEFAULT_REDIS_URL;
    }
    const redisUp = await reachable(process.env.TEST_REDIS_URL, 6379);
    const missing = [!postgresUp && `Postgres (${process.env.TEST_DATABASE_URL})`, !redisUp && `Redis (${process.env.TEST_REDIS_URL})`].filter(Boolean);
    if (missing.length && process.env.CI === 'true') {
      throw new Error(`CI=true and ${missing.join(' and ')} unreachable: the service suites must run in CI. Start them (see .ci/run).`);
    }
    if (missing.length) {
      process.stdout.write(`\n*** SKIPPING service suites: ${missing.join(' and ')} unreachable. Embedded (PGlite + memory) suites still run. ***\n\n`);
    }
    process.env.TOLLGATE_TEST_POSTGRES = postgresUp ? '1' : '0';
    process.env.TOLLGATE_TEST_REDIS = redisUp ? '1' : '0';

    // A Redis Cluster: the one given, or three masters and three replicas of our own for this run.
    if (!process.env.TEST_REDIS_CLUSTER_NODES) {
      try {
        state.cluster = await startRedisCluster();
        process.env.TEST_REDIS_CLUSTER_NODES = state.cluster.seeds;
      } catch (error) {
        if (process.env.CI === 'true') throw new Error(`CI=true and a local Redis Cluster could not start: ${(error as Error).message}`);
        process.stdout.write(`\n*** SKIPPING Redis Cluster suites: a local cluster could not start (${(error as Error).message}). ***\n\n`);
      }
    }
    process.env.TOLLGATE_TEST_REDIS_CLUSTER = process.env.TEST_REDIS_CLUSTER_NODES ? '1' : '0';
  } catch (error) {
    // jest runs no teardown after a failed setup: undo what was made so far here.
    await state.teardown();
    throw error;
  }
}
