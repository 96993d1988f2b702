import { existsSync, mkdtempSync, readFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnTracked, stopChild } from '../support/processes';
import { createScratchDatabase, describeIf, hasPostgres, hasRedis, testRedisUrl } from '../support/services';

// Runs `npm run bench` in its few-second smoke mode so the bench can never rot. It asserts that
// it ran to completion and printed its table, never how fast anything was.
const root = path.resolve(__dirname, '..', '..');
describeIf(hasPostgres() && hasRedis(), 'Postgres and Redis', 'bench smoke run (BENCH_SMOKE=1)', () => {
  it('starts every variant, loads every workload, prints the table and writes the JSON', async () => {
    // A scratch database of its own: the bench's keys and rows are dropped with it.
    const scratch = await createScratchDatabase();
    // run.ts leads its own process group; on the timeout it is stopped with every server it
    // started (a kill of run.ts alone left them holding this worker's stderr open).
    const child = spawnTracked(process.execPath, ['--import', 'tsx', path.join(__dirname, 'run.ts')], {
      cwd: root,
      // This worker's own Redis database (the bench flushes it) in this run's own redis-server.
      // Its JSON into this run's folder (TMPDIR), not the checkout's bench-results/.
      env: { ...process.env, BENCH_SMOKE: '1', BENCH_DATABASE_URL: scratch.url, BENCH_REDIS_URL: testRedisUrl(), BENCH_RESULTS_DIR: mkdtempSync(path.join(os.tmpdir(), 'bench-results-')), NODE_OPTIONS: '' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c) => (stdout += c));
    child.stderr!.on('data', (c) => (stderr = (stderr + c).slice(-20_000)));
    // Generous: two runs at once on this 2-core machine took over four minutes (one run alone: one
    // to three); the bound only ends a bench that hangs.
    const timer = setTimeout(() => void stopChild(child, 'SIGTERM', 5_000), 480_000);
    try {
      const [code, signal] = await new Promise<[number | null, string | null]>((resolve) => child.once('exit', (c, s) => resolve([c, s])));
      if (code !== 0) throw new Error(`run.ts ended with ${signal ?? `exit ${code}`}\n${stderr}`);
    } finally {
      clearTimeout(timer);
      await stopChild(child);
      await scratch.drop();
    }
    const variants = ['bare (PGlite)', 'protected, memory (PGlite)', 'bare (Postgres)', 'protected, Redis + Postgres', 'consumer plan, Redis + Postgres', 'protected, Redis + Postgres, no usage history'];
    for (const variant of variants) expect(stdout).toContain(`| ${variant} |`);
    const file = /numbers written to (\S+)/.exec(stdout)![1];
    expect(existsSync(file)).toBe(true);
    const { rows, library } = JSON.parse(readFileSync(file, 'utf8'));
    expect(rows).toHaveLength(variants.length * 3); // every variant on each of the three workloads
    // a key under a consumer on a plan of three windows and a quota: still one Redis command per request
    const consumerTrivial = rows.find((r: { variant: string; workload: string }) => r.variant === 'consumer plan, Redis + Postgres' && r.workload.startsWith('trivial'));
    expect(consumerTrivial.redisPerOp).toBeLessThanOrEqual(1.05);
    const libraryVariants = ['bare Apollo', 'bare Apollo, context a turn later', 'naive peer, memory', 'Tollgate, memory', 'Tollgate, memory, no usage history', 'naive peer, Redis', 'Tollgate, Redis', 'Tollgate, Redis, 1 % leases'];
    expect(library.rows.map((r: { variant: string }) => r.variant)).toEqual(expect.arrayContaining(libraryVariants));
    for (const row of [...rows, ...library.rows]) {
      expect(row.rps).toBeGreaterThan(0);
      expect(row.non2xx).toBe(0); // every request answered 2xx: the bench measured real work
    }
  }, 510_000);
});
