// npm run bench: Tollgate's gates side by side with the same server with every gate off.
// Variants run as separate processes from one build; rounds interleave them (a b c d a b c d …)
// so drift on this shared 2-core machine hits all alike; the median round is reported.
// BENCH_SMOKE=1 runs one tiny round of everything (the test suite does, so this never rots).
import type { ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import readline from 'node:readline';
import autocannon from 'autocannon';
import Redis from 'ioredis';
import { assertHostileInputIsHandled } from '../support/hostile-input';
import { killAllChildren, spawnTracked, stopChild } from '../support/processes';
import { documentFigures } from './documents';
import { startRedisCluster } from '../support/redis-cluster';

const SMOKE = process.env.BENCH_SMOKE === '1';
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? (SMOKE ? 1 : 5));
const SECONDS = Number(process.env.BENCH_SECONDS ?? (SMOKE ? 1 : 8));
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? (SMOKE ? 4 : 50));
const DATABASE_URL = process.env.BENCH_DATABASE_URL ?? 'postgres://postgres@127.0.0.1:5432/postgres';
const REDIS_URL = process.env.BENCH_REDIS_URL ?? 'redis://127.0.0.1:6379/15';
// Where the JSON of a run goes; the test suite's smoke run writes into its own temporary folder.
// The repository root, from test/bench/ (tsx) or dist/test/bench/ (compiled).
const root = [path.resolve(__dirname, '..', '..'), path.resolve(__dirname, '..', '..', '..')].find((d) => existsSync(path.join(d, 'package.json')))!;

type Variant = { name: string; baseline?: string; env: Record<string, string>; redis?: boolean; script?: 'serve' | 'library-serve'; path?: string };
const variants: Variant[] = [
  { name: 'bare (PGlite)', env: { BENCH_BARE: '1', DATA_DIR: 'memory://' } },
  { name: 'protected, memory (PGlite)', baseline: 'bare (PGlite)', env: { DATA_DIR: 'memory://' } },
  { name: 'bare (Postgres)', env: { BENCH_BARE: '1', DATABASE_URL } },
  { name: 'protected, Redis + Postgres', baseline: 'bare (Postgres)', env: { DATABASE_URL, REDIS_URL }, redis: true },
  // every key under a consumer on a plan of three windows and a daily quota: still one round trip
  { name: 'consumer plan, Redis + Postgres', baseline: 'bare (Postgres)', env: { DATABASE_URL, REDIS_URL, BENCH_CONSUMER: '1' }, redis: true },
  // what usage history costs: the same as 'protected, Redis + Postgres' without it
  { name: 'protected, Redis + Postgres, no usage history', baseline: 'bare (Postgres)', env: { DATABASE_URL, REDIS_URL, USAGE_TRACKING: 'false' }, redis: true },
];

type Workload = { name: string; body: (i: number) => string };
const workloads: Workload[] = [
  { name: 'trivial: { station(id) { name } }', body: () => JSON.stringify({ query: '{ station(id: "LHR") { name } }' }) },
  {
    name: 'realistic: stations(first: 50) + limited observations(last: 3) on each',
    body: () => JSON.stringify({ query: '{ stations(first: 50) { edges { node { id name observations(last: 3) { temperatureC } } } } }' }),
  },
  {
    name: 'mutation: recordObservation',
    body: () => JSON.stringify({
      query: 'mutation($input: RecordObservationInput!) { recordObservation(input: $input) { id } }',
      variables: { input: { stationId: 'OSL', temperatureC: 1.5, humidity: 70, windKph: 9 } },
    }),
  },
];

// BENCH_ONLY=trivial (a prefix of a workload's name) runs just that workload; BENCH_ONLY=library
// runs only the library workload, BENCH_ONLY=startup only the cold start.
const selected = workloads.filter((w) => !process.env.BENCH_ONLY || w.name.startsWith(process.env.BENCH_ONLY));

type Running = { variant: Variant; child: ChildProcess; url: string; key: string; statsUrl?: string };

function serverCommand(script: 'serve' | 'library-serve'): string[] {
  // Compiled when this file is (npm run bench builds first); from source under the test suite.
  return __filename.endsWith('.js') ? [path.join(__dirname, `${script}.js`)] : ['--import', 'tsx', path.join(__dirname, `${script}.ts`)];
}

/** The servers' METRICS_TOKEN: a fresh one per run. */
const METRICS_TOKEN = randomBytes(24).toString('hex');

async function start(variant: Variant): Promise<Running> {
  // Production settings, over plain HTTP on loopback: the bench measures the gates, not TLS, so
  // REQUIRE_HTTPS (on in production) is off, and /metrics (off in production without a token) has one.
  const env: NodeJS.ProcessEnv = { ...process.env, ...variant.env, NODE_ENV: 'production', ALLOW_INTROSPECTION: 'true', REQUIRE_HTTPS: 'false', METRICS_TOKEN };
  if (!variant.env.DATABASE_URL) delete env.DATABASE_URL;
  if (!variant.env.REDIS_URL) delete env.REDIS_URL;
  // Its own process group, recorded for the test run's teardown (test/support/processes.ts).
  const child = spawnTracked(process.execPath, serverCommand(variant.script ?? 'serve'), { cwd: root, env, stdio: ['ignore', 'pipe', 'inherit'] });
  const line = await new Promise<string>((resolve, reject) => {
    const rl = readline.createInterface({ input: child.stdout! });
    rl.once('line', resolve);
    child.once('exit', (code) => reject(new Error(`${variant.name} exited with ${code}`)));
  }).catch(async (error) => {
    await stopChild(child);
    throw error;
  });
  const { url, key, statsUrl } = JSON.parse(line);
  return { variant, child, url, key, statsUrl };
}

async function load(server: Running, workload: Workload, seconds: number) {
  let i = 0;
  const result = await autocannon({
    url: `${server.url}${server.variant.path ?? '/graphql'}`,
    connections: CONNECTIONS,
    duration: seconds,
    requests: [{ method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': server.key }, setupRequest: (req) => ({ ...req, body: workload.body(i++) }) }],
  });
  return { rps: result.requests.average, p50: result.latency.p50, p99: result.latency.p99, requests: result.requests.total, non2xx: result.non2xx, errors: result.errors };
}

async function metric(server: Running, name: string): Promise<number> {
  const text = await (await fetch(`${server.url}/metrics`, { headers: { authorization: `Bearer ${METRICS_TOKEN}` } })).text();
  return text.split('\n').filter((l) => l.startsWith(name + ' ') || l.startsWith(name + '{')).reduce((sum, l) => sum + Number(l.split(' ').pop()), 0);
}


/** Redis commands a library-workload server sent, counted at its client: a script call is one. */
async function clientCommands(server: Running): Promise<number> {
  return ((await (await fetch(server.statsUrl!)).json()) as { commands: number }).commands;
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/**
 * Cold start as a user meets it: `npm start`'s command (src/start.cjs; this bench has just built
 * dist/) on an empty embedded database, timed from spawn to the first GraphQL
 * request answered with the admin key it prints; then the same folder again (a restart). The
 * median of three such pairs, each on its own new folder (one in smoke mode).
 */
type Startup = { firstStartMs: number; restartMs: number; stopMs: number };

async function coldStartOnce(): Promise<Startup> {
  const dataDir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-coldstart-'));
  // SIGTERM to exit of an idle server, the longest of the starts (the README's "stops in under a
  // second" is measured here, not asserted by a test on a loaded machine).
  let stopMs = 0;
  const once = async (): Promise<{ ms: number; key?: string }> => {
    const started = performance.now();
    // npm start's command when this bench is compiled (the bundle with its code cache, which the
    // first start writes); the same server from source under the test suite.
    const command = __filename.endsWith('.js') ? [path.join('src', 'start.cjs')] : ['--import', 'tsx', path.join('src', 'main.ts')];
    const child = spawnTracked(process.execPath, command, {
      cwd: root,
      env: { PATH: process.env.PATH, PORT: '0', LOG_LEVEL: 'info', DATA_DIR: path.join(dataDir, 'db') },
      stdio: ['ignore', 'pipe', 'inherit'],
    });
    let output = '';
    child.stdout!.on('data', (c) => (output += c));
    try {
      for (;;) {
        const url = /"url":"([^"]+)"/.exec(output)?.[1];
        const key = /shown once, store it now\): (\S+)/.exec(output)?.[1] ?? firstKey;
        if (url && key) {
          const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body: JSON.stringify({ query: '{ station(id: "LHR") { name } }' }) });
          if (res.status === 200) return { ms: performance.now() - started, key };
        }
        if (child.exitCode !== null) throw new Error('the server exited during cold start');
        await new Promise((r) => setTimeout(r, 10));
      }
    } finally {
      const stopping = performance.now();
      await stopChild(child, 'SIGTERM');
      stopMs = Math.max(stopMs, performance.now() - stopping);
    }
  };
  let firstKey: string | undefined;
  try {
    const first = await once();
    firstKey = first.key;
    const again = await once();
    return { firstStartMs: Math.round(first.ms), restartMs: Math.round(again.ms), stopMs: Math.round(stopMs) };
  } finally {
    rmSync(dataDir, { recursive: true, force: true });
  }
}

async function coldStart(): Promise<Startup> {
  const runs = [await coldStartOnce()];
  if (!SMOKE) runs.push(await coldStartOnce(), await coldStartOnce());
  return { firstStartMs: median(runs.map((r) => r.firstStartMs)), restartMs: median(runs.map((r) => r.restartMs)), stopMs: median(runs.map((r) => r.stopMs)) };
}

async function main() {
  // BENCH_ONLY=library: just the library workload (the one the performance goals are about).
  if (process.env.BENCH_ONLY === 'library') return void (await libraryWorkload());
  for (const line of documentFigures(root, SMOKE ? 1 : 20)) console.log(line);
  if (process.env.BENCH_ONLY === 'documents') return;
  const startup = await coldStart();
  console.log(`cold start (npm start's command, empty embedded database, median of 3): first request served after ${startup.firstStartMs} ms; after a restart ${startup.restartMs} ms; stopped ${startup.stopMs} ms after SIGTERM`);
  // BENCH_ONLY=startup: just the cold start.
  if (process.env.BENCH_ONLY === 'startup') return;
  const redis = new Redis(REDIS_URL);
  await redis.flushdb();
  const servers: Running[] = [];
  const rows: Record<string, unknown>[] = [];
  try {
    // Started inside the try: a variant that fails to start must not leave the others running.
    for (const v of variants) servers.push(await start(v));
    for (const workload of selected) {
      for (const s of servers) await load(s, workload, SMOKE ? 0.5 : 2); // warm-up: JIT, caches, pools
      const samples = new Map<string, { rps: number[]; p50: number[]; p99: number[]; redisPerOp: number[]; storePerOp: number[]; dbPerReq: number[]; non2xx: number }>();
      for (let round = 0; round < ROUNDS; round++) {
        for (const s of servers) {
          const redisBefore = s.variant.redis ? await metric(s, 'tollgate_redis_commands_total') : 0;
          const dbBefore = await metric(s, 'tollgate_db_queries_total');
          const storeBefore = await metric(s, 'tollgate_limiter_store_duration_seconds_count');
          const r = await load(s, workload, SECONDS);
          const redisAfter = s.variant.redis ? await metric(s, 'tollgate_redis_commands_total') : 0;
          const dbAfter = await metric(s, 'tollgate_db_queries_total');
          const storeAfter = await metric(s, 'tollgate_limiter_store_duration_seconds_count');
          const entry = samples.get(s.variant.name) ?? { rps: [], p50: [], p99: [], redisPerOp: [], storePerOp: [], dbPerReq: [], non2xx: 0 };
          entry.rps.push(r.rps);
          entry.p50.push(r.p50);
          entry.p99.push(r.p99);
          entry.redisPerOp.push(r.requests ? (redisAfter - redisBefore) / r.requests : 0);
          entry.dbPerReq.push(r.requests ? (dbAfter - dbBefore) / r.requests : 0);
          entry.storePerOp.push(r.requests ? (storeAfter - storeBefore) / r.requests : 0);
          entry.non2xx += r.non2xx + r.errors;
          samples.set(s.variant.name, entry);
        }
      }
      for (const v of variants) {
        const e = samples.get(v.name)!;
        const rps = median(e.rps);
        const base = v.baseline ? median(samples.get(v.baseline)!.rps) : rps;
        rows.push({
          workload: workload.name,
          variant: v.name,
          rps: Math.round(rps),
          p50: median(e.p50),
          p99: median(e.p99),
          ratio: Math.round((rps / base) * 100) / 100,
          storeCallsPerOp: Math.round(median(e.storePerOp) * 100) / 100,
          redisPerOp: v.redis ? Math.round(median(e.redisPerOp) * 100) / 100 : null,
          dbPerReq: Math.round(median(e.dbPerReq) * 100) / 100,
          non2xx: e.non2xx,
        });
      }
    }
    // The longer generative hostile-input run (the suite runs 1 000 with one seed).
    const fuzzRuns = Number(process.env.BENCH_FUZZ_RUNS ?? (SMOKE ? 200 : 20_000));
    const target = servers.find((s) => s.variant.name === 'protected, memory (PGlite)')!;
    const fuzzStarted = performance.now();
    await assertHostileInputIsHandled(target.url, target.key, { seed: Date.now() % 1_000_000, numRuns: fuzzRuns });
    console.log(`hostile input: ${fuzzRuns} generated requests, every answer coded and below 500 (${Math.round(performance.now() - fuzzStarted)} ms)`);
  } finally {
    await Promise.all(servers.map((s) => stopChild(s.child, 'SIGTERM')));
  }

  redis.disconnect();
  const library = await libraryWorkload();

  // Store calls: limiter calls the server made (client side; one Redis round trip can carry several).
  // Redis cmds: commands the server's limiter store sent, counted at its client (a script call is one).
  const header = ['workload', 'variant', 'req/s', 'p50 ms', 'p99 ms', 'ratio to bare', 'store calls/op', 'Redis cmds/op', 'PG queries/req', 'non-2xx'];
  const lines = [header, ...rows.map((r) => [r.workload, r.variant, r.rps, r.p50, r.p99, r.ratio, r.storeCallsPerOp, r.redisPerOp ?? '-', r.dbPerReq, r.non2xx])];
  const table = ['| ' + header.join(' | ') + ' |', '|' + header.map(() => '---').join('|') + '|', ...lines.slice(1).map((l) => '| ' + l.join(' | ') + ' |')].join('\n');
  console.log(`\nTollgate bench: ${ROUNDS} round(s) × ${SECONDS} s × ${CONNECTIONS} connections per variant, interleaved; medians.\n`);
  console.log(table);
  const outDir = process.env.BENCH_RESULTS_DIR ?? path.join(root, 'bench-results');
  mkdirSync(outDir, { recursive: true });
  const file = path.join(outDir, `${new Date().toISOString().replace(/[:.]/g, '-')}${SMOKE ? '-smoke' : ''}.json`);
  writeFileSync(file, JSON.stringify({ at: new Date().toISOString(), rounds: ROUNDS, seconds: SECONDS, connections: CONNECTIONS, startup, rows, library }, null, 2));
  console.log(`\nnumbers written to ${file}`);
}

/**
 * The library workload: one schema whose only field does no I/O, on the same Apollo standalone
 * server — bare, the do-it-yourself peer (keys in a Map + graphql-rate-limit-directive), and
 * Tollgate as a library (the README's contract) — on memory and on Redis, interleaved rounds.
 * Nothing hides the gates' own cost here.
 */
async function libraryWorkload() {
  const lib = (name: string, variant: string, extra: Record<string, string> = {}): Variant => ({ name, script: 'library-serve', path: '/', env: { BENCH_VARIANT: variant, ...extra } });
  const redisEnv = { REDIS_URL };
  // A local Redis Cluster (three masters, three replicas) for the cluster variant.
  // (Once more if the first start fails: ports are picked at random and may just have been taken.)
  const cluster = await startRedisCluster()
    .catch(() => startRedisCluster())
    .catch((error: Error) => (console.log(`no Redis Cluster variant: ${error.message}`), null));
  const variants = [
    lib('bare Apollo', 'bare-apollo'),
    lib('bare Apollo, context a turn later', 'bare-apollo-turn'),
    lib('naive peer, memory', 'naive-memory'),
    lib('Tollgate, memory', 'tollgate'),
    // what usage history costs on the request path: the same without it
    lib('Tollgate, memory, no usage history', 'tollgate', { USAGE_TRACKING: 'false' }),
    { ...lib('naive peer, Redis', 'naive-redis', redisEnv), redis: true },
    { ...lib('Tollgate, Redis', 'tollgate', redisEnv), redis: true },
    { ...lib('Tollgate, Redis, 1 % leases', 'tollgate', { ...redisEnv, LIMITS_LEASE_PERCENT: '1' }), redis: true },
    ...(cluster ? [{ ...lib('Tollgate, Redis Cluster', 'tollgate', { REDIS_CLUSTER_NODES: cluster.seeds }), redis: true }] : []),
  ];
  const workload: Workload = { name: '{ hello } (no I/O, @rateLimit)', body: () => JSON.stringify({ query: '{ hello }' }) };
  const servers: Running[] = [];
  const samples = new Map<string, { rps: number[]; p50: number[]; p99: number[]; redisPerReq: number[]; non2xx: number }>();
  try {
    for (const v of variants) servers.push(await start(v));
    for (const s of servers) await load(s, workload, SMOKE ? 0.5 : 2);
    for (let round = 0; round < ROUNDS; round++) {
      for (const s of servers) {
        const before = s.variant.redis ? await clientCommands(s) : 0;
        const r = await load(s, workload, SECONDS);
        const after = s.variant.redis ? await clientCommands(s) : 0;
        const entry = samples.get(s.variant.name) ?? { rps: [], p50: [], p99: [], redisPerReq: [], non2xx: 0 };
        entry.rps.push(r.rps);
        entry.p50.push(r.p50);
        entry.p99.push(r.p99);
        entry.redisPerReq.push(r.requests ? (after - before) / r.requests : 0);
        entry.non2xx += r.non2xx + r.errors;
        samples.set(s.variant.name, entry);
      }
    }
  } finally {
    await Promise.all(servers.map((s) => stopChild(s.child, 'SIGTERM')));
    await cluster?.stop();
  }
  const at = (name: string) => {
    const e = samples.get(name)!;
    return { rps: median(e.rps), p50: median(e.p50), p99: median(e.p99), redisPerReq: Math.round(median(e.redisPerReq) * 100) / 100, non2xx: e.non2xx };
  };
  const bare = at('bare Apollo');
  // p99 added: each round's p99 less bare Apollo's in the same round (run moments apart), then the
  // median of those differences — the machine's drift between rounds cancels out of each pair.
  const p99Added = (name: string, to = 'bare Apollo') => median(samples.get(name)!.p99.map((p99, round) => p99 - samples.get(to)!.p99[round]));
  const rows = variants.map((v) => ({ variant: v.name, ...at(v.name), ratioToBare: Math.round((at(v.name).rps / bare.rps) * 100) / 100, p99Added: p99Added(v.name) }));
  // Tollgate answers its gates one event-loop turn later (take.ts), and under saturation that alone
  // changes how Apollo's server reads and writes its sockets: bare Apollo doing the same is the
  // baseline that leaves only the gates' own cost.
  const turn = 'bare Apollo, context a turn later';
  const ratio = (a: string, b: string) => Math.round((at(a).rps / at(b).rps) * 100) / 100;
  const goals = {
    'Tollgate memory / bare Apollo (goal ≥ 0.90)': ratio('Tollgate, memory', 'bare Apollo'),
    'Tollgate memory / naive peer on memory (goal ≥ 1.0)': ratio('Tollgate, memory', 'naive peer, memory'),
    'Tollgate Redis / bare Apollo (goal ≥ 0.85)': ratio('Tollgate, Redis', 'bare Apollo'),
    'Tollgate Redis / naive peer on Redis (goal ≥ 1.0)': ratio('Tollgate, Redis', 'naive peer, Redis'),
    'Tollgate Redis, 1 % leases / bare Apollo': ratio('Tollgate, Redis, 1 % leases', 'bare Apollo'),
    'Tollgate Redis, 1 % leases / naive peer on Redis': ratio('Tollgate, Redis, 1 % leases', 'naive peer, Redis'),
    'the gates\' own cost: Tollgate memory / bare Apollo with its context a turn later': ratio('Tollgate, memory', turn),
    'the gates\' own cost: Tollgate Redis / bare Apollo with its context a turn later': ratio('Tollgate, Redis', turn),
    'Tollgate memory with usage history / without (goal: no loss beyond noise, ≈ 1.0)': ratio('Tollgate, memory', 'Tollgate, memory, no usage history'),
    'Redis commands per request, Tollgate on one Redis (goal ≤ 1)': at('Tollgate, Redis').redisPerReq,
    'p99 added, Tollgate memory, ms (goal ≤ 1)': p99Added('Tollgate, memory'),
    'p99 added, Tollgate Redis, ms (goal ≤ 2)': p99Added('Tollgate, Redis'),
    'p99 added to bare Apollo with its context a turn later, Tollgate memory, ms': p99Added('Tollgate, memory', turn),
    'p99 added to bare Apollo with its context a turn later, Tollgate Redis, ms': p99Added('Tollgate, Redis', turn),
    ...(cluster ? { 'Redis commands per request, Tollgate on the cluster (its address, its key)': at('Tollgate, Redis Cluster').redisPerReq } : {}),
  };
  const header = ['variant', 'req/s', 'p50 ms', 'p99 ms', 'ratio to bare', 'p99 added ms', 'Redis cmds/req', 'non-2xx'];
  console.log(`\nLibrary workload: ${workload.name}, Apollo standalone, ${ROUNDS} round(s) × ${SECONDS} s × ${CONNECTIONS} connections, interleaved; medians.\n`);
  console.log(['| ' + header.join(' | ') + ' |', '|' + header.map(() => '---').join('|') + '|', ...rows.map((r) => `| ${r.variant} | ${Math.round(r.rps)} | ${r.p50} | ${r.p99} | ${r.ratioToBare} | ${r.p99Added} | ${r.variant.includes('Redis') ? r.redisPerReq : '-'} | ${r.non2xx} |`)].join('\n'));
  console.log('');
  for (const [goal, value] of Object.entries(goals)) console.log(`${goal}: ${value}`);
  return { rows, goals };
}

// Interrupted (Ctrl-C, the smoke test's timeout) or failed: the servers and Redis nodes it
// started (each in a process group of its own) go with it.
for (const signal of ['SIGINT', 'SIGTERM'] as const) {
  process.once(signal, () => {
    killAllChildren();
    process.exit(signal === 'SIGINT' ? 130 : 143);
  });
}

main().catch((err) => {
  console.error(err);
  killAllChildren();
  process.exit(1);
});
