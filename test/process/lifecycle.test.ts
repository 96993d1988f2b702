import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { and, eq, sql } from 'drizzle-orm';
import { openDatabase } from '../../src/db/client';
import { apiKeys, usage } from '../../src/db/schema';
import { runKeysCli } from '../../src/cli/keys';
import { CLOSED_PORT } from '../support/private-redis';
import { serving, start } from '../support/server-process';
import { createScratchDatabase, describeIf, hasPostgres, testDatabaseUrl } from '../support/services';
import { until } from '../support/wait';

// The real process (src/main.ts through tsx: what `npm start` runs compiled), signalled and broken from outside.

const gql = (url: string, key: string, query: string) =>
  fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body: JSON.stringify({ query }) });

/**
 * GETs `url` `count` times, 50 at a time, each given 5 s: how many answers had each status (or
 * the error's name). A server that stops answering ends it early instead of timing out batch after batch.
 */
async function statusesOf(url: string, count: number): Promise<Record<string, number>> {
  const statuses: Record<string, number> = {};
  for (let sent = 0; sent < count; sent += 50) {
    const batch = await Promise.all(Array.from({ length: Math.min(50, count - sent) }, () => fetch(url, { signal: AbortSignal.timeout(5_000) }).then((r) => String(r.status), (e: Error) => e.name)));
    for (const status of batch) statuses[status] = (statuses[status] ?? 0) + 1;
    if (batch.some((status) => status === 'TimeoutError')) break;
  }
  return statuses;
}

describe('the server process', () => {
  // Each test starts real server processes (and the CLI); on a 2-core machine running two suites
  // at once one start can take ten seconds or more. A budget, not a timing assertion.
  jest.setTimeout(90_000);
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-proc-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  // How fast it stops is a product promise measured by the bench (its cold start reports the
  // stop time): a wall-clock bound here failed on a loaded machine without anything being wrong.
  it('idle: exits 0 on SIGTERM, and on SIGINT', async () => {
    for (const signal of ['SIGTERM', 'SIGINT'] as const) {
      const p = start({ DATA_DIR: path.join(dir, 'db') });
      await serving(p);
      p.child.kill(signal);
      const { code } = await p.exit;
      expect(code).toBe(0);
    }
  });

  it('under load: drains in-flight requests, refuses new ones, writes last_used_at and the usage counted, exits 0', async () => {
    const dataDir = path.join(dir, 'db');
    // 40 requests of ~70 points: more than the default burst window (2 000 a minute) holds; this test is about stopping.
    const p = start({ DATA_DIR: dataDir, LAST_USED_FLUSH_SECONDS: '3600', USAGE_FLUSH_SECONDS: '60', BUDGET_BURST_POINTS: '0' });
    const { url, adminKey } = await serving(p);
    expect(adminKey).toMatch(/^tg_/);
    // 40 requests in flight, each a real query on PGlite.
    const query = '{ stations(first: 30) { edges { node { id name country } } } forecast(stationId: "LHR", days: 3) { highC } }';
    let signalledAt = Infinity;
    // Signalled the moment the first answer arrives: the server is working through the batch,
    // the rest are in its hands.
    const signal = () => {
      if (signalledAt !== Infinity) return;
      signalledAt = Date.now();
      p.child.kill('SIGTERM');
    };
    const inFlight = Array.from({ length: 40 }, () =>
      gql(url, adminKey!, query).then(
        async (r) => {
          const after = Date.now() > signalledAt;
          signal();
          return { status: r.status, code: r.status === 200 ? null : (((await r.json()) as any).errors?.[0]?.extensions?.code as string), after };
        },
        () => ({ status: 'refused' as const, code: null, after: true }),
      ),
    );
    const answers = await Promise.all(inFlight);
    // Requests in flight when the stop began were completed (drained), not dropped: some answers
    // arrive after the signal with 200. Anything that arrived too late is refused cleanly: the
    // connection is refused, or a coded 503 — never a hang or a broken answer.
    expect({ drained: answers.filter((a) => a.status === 200 && a.after).length > 0, answers }).toMatchObject({ drained: true });
    for (const a of answers) {
      if (a.status === 200 || a.status === 'refused') continue;
      expect(a).toMatchObject({ status: 503, code: 'SERVICE_UNAVAILABLE' });
    }
    const { code } = await p.exit;
    if (code !== 0) console.log(p.stdout.filter((l) => !l.includes('"msg":"request"')).join('\n'), p.stderr.join('\n'));
    expect(code).toBe(0);
    await expect(gql(url, adminKey!, '{ __typename }')).rejects.toThrow(); // nobody listens any more
    const db = await openDatabase({ dataDir });
    try {
      const rows = await db.db.select().from(apiKeys).where(eq(apiKeys.name, 'bootstrap admin'));
      expect(rows[0].lastUsedAt).toBeInstanceOf(Date);
      // Usage history too: no flush was due (60 s), so every answered operation was written by the stop.
      const [counted] = await db.db.select({ operations: sql<number>`sum(${usage.operations})::int` }).from(usage).where(and(eq(usage.keyId, rows[0].id), eq(usage.granularity, 'day')));
      expect(counted.operations).toBe(answers.filter((a) => a.status === 200).length);
    } finally {
      await db.close();
    }
  });

  it('a port in use: one line naming PORT, exit 1, and the first admin key is not burnt', async () => {
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r)); // holds a port of its own choosing
    const { port } = blocker.address() as net.AddressInfo;
    try {
      const p = start({ DATA_DIR: path.join(dir, 'db'), PORT: String(port) });
      const { code } = await p.exit;
      expect(code).toBe(1);
      expect(p.stderr.join('\n')).toMatch(/PORT: 127\.0\.0\.1:\d+ is already in use/);
      expect(p.stderr.join('\n')).not.toMatch(/\n\s+at /);
      expect(p.stdout.join('\n')).not.toMatch(/Admin API key/);
    } finally {
      blocker.close();
    }
    const again = start({ DATA_DIR: path.join(dir, 'db') });
    const { adminKey } = await serving(again);
    expect(adminKey).toMatch(/^tg_/); // printed on the first start that really served
    again.child.kill('SIGTERM');
    expect((await again.exit).code).toBe(0);
  });

  it('one process owns the embedded database folder: a second server and the CLI are refused, naming the holder; nothing is lost', async () => {
    const dataDir = path.join(dir, 'db');
    const first = start({ DATA_DIR: dataDir });
    const { url, adminKey } = await serving(first);
    const second = start({ DATA_DIR: dataDir });
    const { code } = await second.exit;
    expect(code).toBe(1);
    expect(second.stderr.join('\n')).toMatch(new RegExp(`DATA_DIR: the embedded database .* is in use by process ${first.child.pid} \\(tollgate server`));
    // Both name the address the holder really serves on (PORT=0: a port of its own choosing), not a default.
    expect(url).not.toMatch(/:4000$/);
    expect(second.stderr.join('\n')).toContain(`serving ${url}). `);
    expect(second.stderr.join('\n')).toContain(`--url ${url} list`);
    const out: string[] = [];
    expect(await runKeysCli(['list', '--all'], (l) => out.push(l), { DATA_DIR: dataDir })).toBe(1);
    expect(out.join('\n')).toMatch(new RegExp(`in use by process ${first.child.pid}`));
    // The CLI's hint is the command to run instead: the same one, through that server.
    expect(out.join('\n')).toMatch(new RegExp(`Go through its admin API instead:\n  TOLLGATE_ADMIN_KEY=<admin key> npm run keys -- --url ${url} list --all$`));
    // The server was never disturbed: a key created through it survives a restart.
    const created: any = await (await gql(url, adminKey!, 'mutation { createApiKey(input: { name: "kept", scopes: ["read"] }) { secret } }')).json();
    const secret = created.data.createApiKey.secret;
    first.child.kill('SIGTERM');
    expect((await first.exit).code).toBe(0);
    const restarted = start({ DATA_DIR: dataDir });
    const back = await serving(restarted);
    expect((await gql(back.url, secret, '{ me { name } }')).status).toBe(200);
    restarted.child.kill('SIGTERM');
    await restarted.exit;
  });

  it('a log reader that stops reading (a stuck collector, a paused pipe) does not stop the API; its lines arrive when it reads again', async () => {
    const p = start({ DATA_DIR: path.join(dir, 'db') });
    try {
      const { url } = await serving(p);
      // Stop reading stdout: the pipe fills after a few hundred access-log lines (~64 KB).
      p.child.stdout!.pause();
      const requests = 1500;
      expect(await statusesOf(`${url}/health`, requests)).toEqual({ 200: requests });
      // Reading again, every line comes through: nothing was dropped below the buffer's bound.
      p.child.stdout!.resume();
      const logged = () => p.stdout.filter((l) => l.includes('"msg":"request"') && l.includes('"path":"/health"')).length;
      for (const deadline = Date.now() + 15_000; logged() < requests && Date.now() < deadline; ) await new Promise((r) => setTimeout(r, 50));
      expect(logged()).toBe(requests);
      p.child.kill('SIGTERM');
      expect((await p.exit).code).toBe(0);
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL'); // a failed assertion must not leave the server behind
    }
  }, 90_000);

  it('a log reader that never reads again: past 8 MiB waiting, lines are dropped and counted instead of growing the process without bound', async () => {
    const p = start({ DATA_DIR: path.join(dir, 'db') });
    try {
      const { url } = await serving(p);
      p.child.stdout!.pause();
      // 404s for long paths: each access-log line is ~0.5 KB (the path cut to 256 characters), so
      // 24 000 of them would queue ~12 MB.
      const requests = 24_000;
      const longPath = `/nowhere/${'y'.repeat(2000)}`;
      expect(await statusesOf(url + longPath, requests)).toEqual({ 404: requests }); // the API kept answering
      const droppedLines = async () => Number(/^tollgate_log_lines_dropped_total (\d+)/m.exec(await (await fetch(`${url}/metrics`)).text())?.[1]);
      const droppedWhilePaused = await droppedLines(); // all of them 404 lines: nothing else ran
      expect(droppedWhilePaused).toBeGreaterThan(0);
      // Read again: what waited arrives, and a warning says how many lines were dropped (one warning
      // per stretch of drops: lines can still be dropped while the backlog drains).
      p.child.stdout!.resume();
      // Wait for the events, not for a quiet spell (a loaded machine pauses longer than any):
      // every 404 line that was not dropped arrives (no scrape meanwhile: it could be dropped too)…
      const kept = () => p.stdout.filter((l) => l.includes('"msg":"request"') && l.includes('/nowhere/'));
      await until(() => kept().length >= requests - droppedWhilePaused, 60_000);
      // …and, with the next line that fits, the warnings account for every drop.
      const warnings = () => p.stdout.map((l) => (l.startsWith('{') ? JSON.parse(l) : null)).filter((l) => l?.droppedLines !== undefined);
      const warned = () => warnings().reduce((sum, w) => sum + w.droppedLines, 0);
      await until(async () => (await fetch(`${url}/health`), warned() === (await droppedLines())), 30_000);
      expect(warnings().length).toBeGreaterThan(0);
      for (const w of warnings()) expect(w).toMatchObject({ level: 40, msg: 'log lines dropped: stdout was not being read' });
      const dropped = warned();
      expect(await droppedLines()).toBe(dropped);
      // Every 404 was either logged or counted (the count may also hold the first scrape's line).
      expect([requests, requests + 1]).toContain(kept().length + dropped);
      // What waited was 8 MiB (plus what the pipe and this reader had already taken), not more.
      const keptBytes = kept().reduce((sum, l) => sum + l.length + 1, 0);
      expect(keptBytes).toBeGreaterThan(8 * 1024 * 1024);
      expect(keptBytes).toBeLessThan(9 * 1024 * 1024);
      p.child.kill('SIGTERM');
      expect((await p.exit).code).toBe(0);
    } finally {
      if (p.child.exitCode === null) p.child.kill('SIGKILL'); // a failed assertion must not leave the server behind
    }
  }, 300_000); // 24 000 requests: with two runs at once on two cores, over two minutes
});

describeIf(hasPostgres(), `Postgres (${process.env.TEST_DATABASE_URL})`, 'startup failures name their cause', () => {
  const fails = async (env: Record<string, string>) => {
    const p = start({ DATABASE_TIMEOUT_MS: '1000', ...env });
    const { code } = await p.exit;
    const stderr = p.stderr.join('\n');
    expect(code).toBe(1);
    expect(stderr).not.toMatch(/\n\s+at |Failed query/); // one line, no stack
    expect(p.stdout.join('\n')).not.toMatch(/Admin API key/);
    return { stderr };
  };

  it('a closed port: "connection refused" at host:port', async () => {
    const port = CLOSED_PORT;
    const { stderr } = await fails({ DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/x` });
    expect(stderr).toMatch(new RegExp(`DATABASE_URL: cannot connect to 127\\.0\\.0\\.1:${port} \\(connection refused\\)`));
  });

  it('a database that does not exist: says so, by name', async () => {
    const url = new URL(testDatabaseUrl());
    url.pathname = '/tollgate_no_such_db';
    const { stderr } = await fails({ DATABASE_URL: url.toString() });
    expect(stderr).toMatch(/DATABASE_URL: database "tollgate_no_such_db" does not exist/);
  });

  it('an open port that is not Postgres: fails within the connect timeout, not 30 s', async () => {
    // Accepts, never answers (nor reads: the server's startup message stays unread, so the
    // connection outlives the server that opened it unless destroyed here).
    const accepted = new Set<net.Socket>();
    const silent = net.createServer((socket) => accepted.add(socket));
    await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
    const { port } = silent.address() as net.AddressInfo;
    try {
      // Which event ended the wait is in the message (the connect timeout's own); how long the
      // child took to start and fail is not (tsx compiling under load takes seconds).
      const { stderr } = await fails({ DATABASE_URL: `postgres://postgres@127.0.0.1:${port}/x` });
      expect(stderr).toMatch(/DATABASE_URL: no Postgres answered at 127\.0\.0\.1:\d+ within 1000 ms/);
    } finally {
      for (const socket of accepted) socket.destroy();
      silent.close();
    }
  });

  it('a reachable database still starts (the control case)', async () => {
    const scratch = await createScratchDatabase();
    try {
      const p = start({ DATABASE_URL: scratch.url });
      await serving(p);
      p.child.kill('SIGTERM');
      expect((await p.exit).code).toBe(0);
    } finally {
      await scratch.drop();
    }
  });
});
