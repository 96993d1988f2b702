import { execFile } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { describeIf, hasPostgres, hasRedis, testRedisUrl } from '../support/services';

// Runs `npm run bench` in its few-second smoke mode so the bench can never rot. It asserts that
// it ran to completion and printed its table, never how fast anything was.
const root = path.resolve(__dirname, '..', '..');
describeIf(hasPostgres() && hasRedis(), 'Postgres and Redis', 'bench smoke run (BENCH_SMOKE=1)', () => {
  it('starts every variant, loads every workload, prints the table and writes the JSON', async () => {
    const { stdout } = await new Promise<{ stdout: string }>((resolve, reject) => {
      execFile(process.execPath, ['--import', 'tsx', path.join(__dirname, 'run.ts')], {
        cwd: root,
        // This worker's own Redis database (the bench flushes it), on whatever TEST_REDIS_URL names.
        env: { ...process.env, BENCH_SMOKE: '1', BENCH_DATABASE_URL: process.env.TEST_DATABASE_URL, BENCH_REDIS_URL: testRedisUrl(), NODE_OPTIONS: '' },
        timeout: 120_000,
      }, (error, stdout, stderr) => (error ? reject(new Error(`${error.message}\n${stderr}`)) : resolve({ stdout })));
    });
    for (const variant of ['bare (PGlite)', 'protected, memory (PGlite)', 'bare (Postgres)', 'protected, Redis + Postgres']) {
      expect(stdout).toContain(`| ${variant} |`);
    }
    const file = /numbers written to (\S+)/.exec(stdout)![1];
    expect(existsSync(file)).toBe(true);
    const { rows, library } = JSON.parse(readFileSync(file, 'utf8'));
    expect(rows).toHaveLength(12);
    const libraryVariants = ['bare Apollo', 'bare Apollo, context a turn later', 'naive peer, memory', 'Tollgate, memory', 'naive peer, Redis', 'Tollgate, Redis', 'Tollgate, Redis, 1 % leases'];
    expect(library.rows.map((r: { variant: string }) => r.variant)).toEqual(expect.arrayContaining(libraryVariants));
    for (const row of [...rows, ...library.rows]) {
      expect(row.rps).toBeGreaterThan(0);
      expect(row.non2xx).toBe(0); // every request answered 2xx: the bench measured real work
    }
  }, 150_000);
});
