import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import postgres from 'postgres';
import { cleanAbandonedRuns, cleanNestedRuns } from './global-setup';
import { startRedisServer } from './redis-server';
import { killGroup, spawnTracked, stopChild } from './processes';
import { describeIf, hasPostgres, testDatabaseUrl } from './services';
import { until } from './wait';

// A run that could not tear itself down — SIGKILLed, or a second signal mid-teardown — must not
// leave its redis-servers, its database or its folder on the machine for ever.
const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
const startTime = (pid: number) => {
  const stat = require('node:fs').readFileSync(`/proc/${pid}/stat`, 'utf8') as string;
  return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
};
const adminUrl = () => {
  const url = new URL(testDatabaseUrl());
  url.pathname = '/postgres';
  return url.toString();
};
const databases = async (pattern: string) => {
  const admin = postgres(adminUrl(), { max: 1, onnotice: () => {} });
  try {
    return (await admin<{ datname: string }[]>`select datname from pg_database where datname like ${pattern}`).map((r) => r.datname);
  } finally {
    await admin.end({ timeout: 1 });
  }
};

describeIf(hasPostgres(), 'Postgres (TEST_DATABASE_URL)', 'runs that ended without their teardown', () => {
  it.each([
    ['the next run on the machine', (machineTmp: string) => cleanAbandonedRuns(machineTmp, adminUrl())],
    // A jest a test started inside this run (the test below), killed with it: its folder is inside
    // this run's folder, its processes carry its own run's mark. This run's teardown cleans it.
    ['the teardown of the run it was started in', (machineTmp: string) => cleanNestedRuns(path.dirname(machineTmp), adminUrl())],
  ])('%s kills what a SIGKILLed run left (its redis-server), drops its database and folder; a live run is left alone', async (_, clean) => {
    const outer = mkdtempSync(path.join(os.tmpdir(), 'outer-run-'));
    const tmp = path.join(outer, 'machine-tmp');
    // A jest process that is gone: a pid that has exited.
    const gone = spawnSync('true').pid!;
    const deadRun = path.join(tmp, `tollgate-run-${gone}_dead01-x`);
    // Named for the dead run (its cleaner drops it) and for this one (this run's teardown drops it
    // should this test be interrupted before its own finally).
    const database = `tollgate_t_${process.env.TOLLGATE_RUN_ID ?? process.pid}_${gone}_dead01`;
    mkdirSync(path.join(deadRun, 'pids'), { recursive: true });
    const redis = await startRedisServer(deadRun);
    writeFileSync(path.join(deadRun, 'pids', String(redis.pid)), JSON.stringify({ what: 'redis-server', started: startTime(redis.pid) }));
    const admin = postgres(adminUrl(), { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database ${database}`);
    // A run whose jest process lives (this one): not touched.
    const liveRun = path.join(tmp, `tollgate-run-${process.pid}_live01-x`);
    mkdirSync(liveRun);
    try {
      await clean(tmp);
      await until(() => !alive(redis.pid), 5_000);
      expect(await databases(database)).toEqual([]);
      expect(readdirSync(tmp)).toEqual([path.basename(liveRun)]);
    } finally {
      await stopChild(redis.child);
      await admin.unsafe(`drop database if exists ${database} with (force)`);
      await admin.end({ timeout: 1 });
      rmSync(outer, { recursive: true, force: true });
    }
  });

  it('a run sent SIGTERM twice during its setup (a CI cancel, Ctrl-C twice) still kills its Redis processes and drops its database', async () => {
    const root = path.resolve(__dirname, '..', '..');
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'nested-tmp-'));
    // A run of its own (TMPDIR: its folders land where this test looks), stopped while its setup
    // starts the Redis Cluster — where a second signal used to end the teardown half-way.
    const env = { ...process.env, TMPDIR: tmp, TEST_DATABASE_URL: adminUrl().replace(/\/postgres$/, '/test'), TOLLGATE_RUN_ID: '', TOLLGATE_RUN_DIR: '', TEST_REDIS_URL: '', TEST_REDIS_CLUSTER_NODES: '', TOLLGATE_HANDLE_LOG: '' };
    for (const name of ['TOLLGATE_RUN_ID', 'TOLLGATE_RUN_DIR', 'TEST_REDIS_URL', 'TEST_REDIS_CLUSTER_NODES', 'TOLLGATE_HANDLE_LOG'] as const) delete env[name];
    const run = spawnTracked(process.execPath, [path.join(root, 'node_modules/jest/bin/jest.js'), 'test/keys/format.test.ts'], { cwd: root, env, stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => run.once('exit', () => resolve()));
    try {
      const runDir = () => readdirSync(tmp).find((n) => n.startsWith('tollgate-run-'));
      const pids = () => {
        try {
          return readdirSync(path.join(tmp, runDir()!, 'pids')).map(Number);
        } catch {
          return []; // not made yet
        }
      };
      await until(() => pids().length >= 3, 60_000); // its redis-server and the first cluster nodes
      const started = pids();
      const runId = /^tollgate-run-(\d+_[a-z0-9]+)-/.exec(runDir()!)![1];
      process.kill(run.pid!, 'SIGTERM');
      setTimeout(() => run.pid && alive(run.pid) && process.kill(run.pid, 'SIGTERM'), 50);
      await exited;
      await until(() => started.every((pid) => !alive(pid)), 10_000);
      expect(started.filter(alive)).toEqual([]);
      expect(await databases(`tollgate\\_%${runId}%`)).toEqual([]);
      expect(existsSync(path.join(tmp, runDir() ?? 'none'))).toBe(false);
    } finally {
      await stopChild(run);
      rmSync(tmp, { recursive: true, force: true });
    }
  }, 120_000);
  it('a run interrupted with SIGINT mid-way (Ctrl-C: the whole process group) leaves no process, folder or database', async () => {
    const root = path.resolve(__dirname, '..', '..');
    const tmp = mkdtempSync(path.join(os.tmpdir(), 'nested-tmp-'));
    const markers = mkdtempSync(path.join(os.tmpdir(), 'markers-'));
    const env: NodeJS.ProcessEnv = { ...process.env, TMPDIR: tmp, FIXTURE_MARKERS: markers, TOLLGATE_TEARDOWN_DELAY_MS: '5000', TEST_DATABASE_URL: adminUrl().replace(/\/postgres$/, '/test') };
    for (const name of ['TOLLGATE_RUN_ID', 'TOLLGATE_RUN_DIR', 'TEST_REDIS_URL', 'TEST_REDIS_CLUSTER_NODES', 'TOLLGATE_HANDLE_LOG', 'TOLLGATE_RUN_INTERRUPTED']) delete env[name];
    // Four files on two workers, each starting a redis-server of its own and holding it.
    const run = spawnTracked(process.execPath, [path.join(root, 'node_modules/jest/bin/jest.js'), '--testMatch', '**/fixtures/interrupted/*.fixture.ts', '--maxWorkers', '2'], { cwd: root, env, stdio: 'ignore' });
    const exited = new Promise<void>((resolve) => run.once('exit', () => resolve()));
    const started = () => readdirSync(markers).map(Number);
    try {
      await until(() => started().length >= 2, 90_000); // both workers are in a test
      const runId = /^tollgate-run-(\d+_[a-z0-9]+)-/.exec(readdirSync(tmp).find((n) => n.startsWith('tollgate-run-'))!)![1];
      process.kill(-run.pid!, 'SIGINT');
      await exited;
      // Whatever the run, or a worker jest started in place of a killed one, had started by now
      // must be gone for good: watched for a while, not at one instant.
      await new Promise((r) => setTimeout(r, 3_000));
      expect(started().filter(alive).map((pid) => `redis-server ${pid} of ${readFileSync(path.join(markers, String(pid)), 'utf8')}`)).toEqual([]);
      expect(readdirSync(tmp).filter((n) => n.startsWith('tollgate-run-'))).toEqual([]);
      expect(await databases(`tollgate\\_%${runId}%`)).toEqual([]);
    } finally {
      await stopChild(run);
      for (const pid of started()) killGroup(pid);
      rmSync(tmp, { recursive: true, force: true });
      rmSync(markers, { recursive: true, force: true });
    }
  }, 150_000);
});
