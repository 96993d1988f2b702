import type { ChildProcess } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { spawnTracked, stopChild } from '../support/processes';

// Tollgate as an owner meets it: `npm pack` of this repository, installed into an empty app with
// a plain `npm install` (no --force, no --legacy-peer-deps), then the README's library example —
// copied from the README, not from here — run with plain node (no tsx), checked over HTTP.
const root = path.resolve(__dirname, '..', '..');

/** Runs a command to the end; on its timeout the whole group goes (npm's build steps too, not just npm). */
const run = (command: string, args: string[], cwd: string, timeout = 240_000) =>
  new Promise<string>((resolve, reject) => {
    const child = spawnTracked(command, args, { cwd, env: { ...process.env, NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c) => (stdout += c));
    child.stderr!.on('data', (c) => (stderr = (stderr + c).slice(-3000)));
    const timer = setTimeout(() => void stopChild(child), timeout);
    child.once('error', reject);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      if (code === 0) resolve(stdout);
      else reject(new Error(`${command} ${args.join(' ')} failed (${signal ?? `exit ${code}`}${signal ? `, after ${timeout} ms` : ''})\n${stderr}`));
    });
  });

/**
 * A copy of the working tree (as it is, edits included) with this checkout's node_modules linked
 * in: `npm pack` runs `prepare`, which rebuilds dist/, and it must do so in the copy — never under
 * the tests that run this checkout's dist/ at the same time (npm start's bundle and its code cache).
 */
function workingTreeCopy(): string {
  const copy = mkdtempSync(path.join(os.tmpdir(), 'tollgate-pack-src-'));
  const skip = new Set(['node_modules', 'dist', '.git', 'bench-results', '.data', 'coverage']);
  cpSync(root, copy, { recursive: true, filter: (src) => !skip.has(path.relative(root, src).split(path.sep)[0]) });
  symlinkSync(path.join(root, 'node_modules'), path.join(copy, 'node_modules'), 'dir');
  return copy;
}

/** The README's ```js block that starts with `// <file>`, exactly as an owner would copy it. */
function readmeBlock(file: string): string {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const block = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]).find((b) => b.startsWith(`// ${file}`));
  if (!block) throw new Error(`README has no \`\`\`js block starting with // ${file}`);
  return block;
}

/** The access lines an app wrote to stdout (JSON lines with msg "request"). */
const accessLines = (out: string) =>
  out.split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l)).filter((l) => l.msg === 'request');

/** /health, /ready and /metrics as an owner's app serves them (no METRICS_TOKEN here: public). */
async function expectOperations(base: string) {
  const health = await fetch(`${base}/health`);
  expect([health.status, await health.json()]).toEqual([200, { status: 'ok' }]);
  const ready = await fetch(`${base}/ready`);
  expect([ready.status, ((await ready.json()) as any).status]).toEqual([200, 'ready']);
  const metrics = await fetch(`${base}/metrics`);
  expect(metrics.status).toBe(200);
  const text = await metrics.text();
  expect(text).toMatch(/^tollgate_requests_total\{status="401",operation_type="none"\} [1-9]/m);
  expect(text).toMatch(/^tollgate_auth_failures_total\{reason="missing"\} [1-9]/m);
}

type Running = { child: ChildProcess; out: () => string };
async function startApp(dir: string, file: string, env: Record<string, string>): Promise<Running & { url: string; key: string }> {
  const child = spawnTracked(process.execPath, [file], { cwd: dir, env: { PATH: process.env.PATH, NODE_ENV: 'development', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  child.stdout!.on('data', (c) => (out += c));
  child.stderr!.on('data', (c) => (out += c));
  const deadline = Date.now() + 60_000;
  while (!/serving (\S+)/.test(out)) {
    if (child.exitCode !== null || Date.now() > deadline) {
      await stopChild(child); // a start that failed must not leave the app behind
      throw new Error(`${file} did not start:\n${out}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const key = /Admin API key \(shown once, store it now\): (\S+)/.exec(out)?.[1] ?? '';
  return { child, out: () => out, url: /serving (\S+)/.exec(out)![1], key };
}

const post = async (url: string, query: string, key?: string) => {
  const res = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json', ...(key ? { 'x-api-key': key } : {}) }, body: JSON.stringify({ query }) });
  return { status: res.status, body: (await res.json()) as any };
};

describe('the npm package, installed into an empty app', () => {
  let dir: string;
  let source: string | undefined;
  const running: ChildProcess[] = [];
  /** The README's app, left running by its test on its embedded database, and its admin key. */
  let owners: { url: string; key: string; dataDir: string } | undefined;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-owner-'));
    source = workingTreeCopy();
    await run('npm', ['pack', '--pack-destination', dir], source);
    const tarball = readdirSync(dir).find((f) => f.endsWith('.tgz'))!;
    writeFileSync(path.join(dir, 'package.json'), JSON.stringify({ name: 'owner-app', version: '1.0.0', type: 'module', private: true }));
    await run('npm', ['install', `./${tarball}`, '@apollo/server@^5', 'graphql@^16', 'express@^5', '@as-integrations/express5@^1', '--no-audit', '--no-fund', '--prefer-offline'], dir);
  }, 400_000);
  afterAll(async () => {
    for (const child of running) await stopChild(child, 'SIGTERM');
    rmSync(dir, { recursive: true, force: true });
    if (source) rmSync(source, { recursive: true, force: true });
  });

  it('ships compiled JavaScript, types and the directive SDL behind an exports map, and no tsx at run time', () => {
    const pkg = JSON.parse(readFileSync(path.join(dir, 'node_modules', 'tollgate', 'package.json'), 'utf8'));
    expect(pkg.exports['.']).toEqual({ types: './dist/src/index.d.ts', default: './dist/src/index.js' });
    const installed = (p: string) => readFileSync(path.join(dir, 'node_modules', 'tollgate', p), 'utf8');
    expect(installed('dist/src/index.d.ts')).toMatch(/createTollgate/);
    expect(installed('schema/directives.graphql')).toMatch(/directive @rateLimit/);
    expect(Object.keys(pkg.dependencies)).not.toContain('tsx');
  });

  /** `npx tollgate-keys …` in the owner's app: exit code, standard output, standard error. */
  const keysCli = (env: Record<string, string>, ...args: string[]) =>
    new Promise<{ code: number | null; out: string; err: string }>((resolve, reject) => {
      const child = spawnTracked('npx', ['--no-install', 'tollgate-keys', ...args], { cwd: dir, env: { ...process.env, NODE_OPTIONS: '', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
      let out = '';
      let err = '';
      child.stdout!.on('data', (c) => (out += c));
      child.stderr!.on('data', (c) => (err += c));
      child.once('error', reject);
      child.once('exit', (code) => resolve({ code, out, err }));
    });
  /** Its --json answer, which must have succeeded. */
  const keysJson = async (env: Record<string, string>, ...args: string[]) => {
    const result = await keysCli(env, ...args, '--json');
    expect({ args, code: result.code, err: result.err }).toEqual({ args, code: 0, err: '' });
    return JSON.parse(result.out);
  };

  it('installs the keys CLI as a command: npx tollgate-keys creates with a budget, updates, lists, rotates and revokes on the owner\'s own database', async () => {
    const help = await keysCli({}, '--help');
    expect(help).toMatchObject({ code: 0, out: expect.stringMatching(/^Usage: npx tollgate-keys \[--url URL/) });
    const env = { DATA_DIR: path.join(dir, '.data-cli') };
    const created = await keysCli(env, 'create', '--name', 'from npx', '--scopes', 'read', '--budget', '100/60');
    expect(created).toMatchObject({ code: 0, out: expect.stringMatching(/^secret: +tg_\w+ /m) });
    expect(created.out).toMatch(/^budget: +100\/60s$/m);
    const id = /^id: +([0-9a-f-]{36})$/m.exec(created.out)![1];
    const updated = await keysJson(env, 'update', id, '--budget', '50/60,1000/3600', '--allowed-origins', 'https://app.example.com');
    expect(updated).toMatchObject({ id, budget: { points: 50, duration: 60 }, budgets: [{ points: 1000, duration: 3600 }], allowedOrigins: ['https://app.example.com'], status: 'active' });
    expect(await keysJson(env, 'list')).toEqual([updated]);
    const rotated = await keysJson(env, 'rotate', id, '--grace', '0');
    expect(rotated).toMatchObject({ secret: expect.stringMatching(/^tg_/), apiKey: { id } });
    expect(await keysCli(env, 'revoke', id)).toMatchObject({ code: 0, out: expect.stringMatching(new RegExp(`^revoked ${id} at `)) });
    expect(await keysJson(env, 'list')).toEqual([]);
    // A mistake: one line on standard error, exit 1, no stack trace.
    const wrong = await keysCli(env, 'update', id, '--budget', 'lots');
    expect(wrong).toEqual({ code: 1, out: '', err: 'error: --budget "lots" must be POINTS/SECONDS, e.g. 500/60 (several: 500/60,10000/3600; or none)\n' });
  }, 90_000);

  it('runs the README example as written: keys, field budgets, operation cost, the owner\'s context, the admin API', async () => {
    writeFileSync(path.join(dir, 'server.mjs'), readmeBlock('server.mjs'));
    // PORT=0: the app binds a free port itself and prints its URL.
    // last_used_at flushed hourly: only a clean stop writes it (checked at the end).
    const app = await startApp(dir, 'server.mjs', { PORT: '0', OPS_PORT: '0', DATA_DIR: path.join(dir, '.data'), LAST_USED_FLUSH_SECONDS: '3600' });
    running.push(app.child);
    expect(app.key).toMatch(/^tg_/); // printed on the first start, exactly as npm start does

    const missing = await post(app.url, '{ greeting }');
    expect(missing.status).toBe(401);
    expect(missing.body.errors[0].extensions.code).toBe('UNAUTHENTICATED');

    const ok = await post(app.url, '{ greeting books { title } }', app.key);
    expect(ok.status).toBe(200);
    expect(ok.body.data).toEqual({ greeting: 'Hello, bootstrap admin', books: [{ title: 'Kindred' }, { title: 'Solaris' }] });
    expect(ok.body.extensions.cost).toMatchObject({ requestedQueryCost: 2, actualQueryCost: 2 });

    // books: 4 points a minute, 2 a call: the 2nd call passes, the 3rd is refused at its path
    expect((await post(app.url, '{ books { title } }', app.key)).body.errors).toBeUndefined();
    const refused = await post(app.url, '{ greeting books { title } }', app.key);
    expect(refused.status).toBe(200);
    expect(refused.body.data).toEqual({ greeting: 'Hello, bootstrap admin', books: null });
    expect(refused.body.errors).toHaveLength(1);
    expect(refused.body.errors[0]).toMatchObject({ path: ['books'], extensions: { code: 'RATE_LIMITED', coordinate: 'Query.books', limit: 4, remaining: 0 } });
    expect(JSON.stringify(refused.body)).not.toMatch(/stacktrace|node_modules/);

    const created = await post(app.url, 'mutation { createApiKey(input: { name: "reader", scopes: ["read"] }) { secret } }', app.key);
    const reader = created.body.data.createApiKey.secret;
    expect((await post(app.url, '{ greeting }', reader)).body.data.greeting).toBe('Hello, reader');
    expect((await post(app.url, '{ apiKeys { totalCount } }', reader)).status).toBe(403);
    const dry = await post(app.url, '{ rateLimit(dryRun: true) { cost } books(first: 2) { title } }', reader);
    expect(dry.body.data).toEqual({ rateLimit: { cost: 2 } }); // priced, not run

    // The access lines (requestLogPlugin) and the operations listener (operationsHandler).
    const lines = accessLines(app.out());
    expect(lines[0]).toMatchObject({ method: 'POST', status: 401, ip: '127.0.0.1', gates: ['key'], reason: 'missing', userAgent: expect.any(String) });
    expect(lines.find((l) => l.status === 200)).toMatchObject({ ip: '127.0.0.1', keyId: expect.any(String), operationType: 'query', cost: 2 });
    expect(JSON.stringify(lines)).not.toContain(app.key); // printed once on the first start, never logged
    await expectOperations(/operations on (\S+)/.exec(app.out())![1]);

    // Ctrl-C (SIGINT) stops it cleanly: exit 0, and the reader's last use, which only the stop
    // writes, is there after a restart.
    const exited = new Promise<string>((resolve) => app.child.once('exit', (code, signal) => resolve(`${code} ${signal}`)));
    app.child.kill('SIGINT');
    // Exit code 0, not killed by the signal (Apollo's own handler re-raised it before Tollgate closed).
    expect({ how: await exited, out: app.out() }).toEqual({ how: '0 null', out: expect.any(String) });
    const again = await startApp(dir, 'server.mjs', { PORT: '0', OPS_PORT: '0', DATA_DIR: path.join(dir, '.data') });
    running.push(again.child);
    const keys = await post(again.url, '{ apiKeys { edges { node { name lastUsedAt } } } }', app.key);
    expect(keys.body.data.apiKeys.edges.find((e: { node: { name: string } }) => e.node.name === 'reader').node.lastUsedAt).toEqual(expect.any(String));
    owners = { url: again.url, key: app.key, dataDir: path.join(dir, '.data') };
  }, 120_000);

  it('the CLI beside the owner\'s running app: refused its embedded database, it names the address the app serves on; through it, usage exports as CSV', async () => {
    const { url, key, dataDir } = owners!;
    const refused = await keysCli({ DATA_DIR: dataDir }, 'list');
    expect(refused.code).toBe(1);
    expect(refused.err).toContain(`serving ${url}`);
    expect(refused.err).toContain(`\n  TOLLGATE_ADMIN_KEY=<admin key> npx tollgate-keys --url ${url} list\n`);
    const remote = { TOLLGATE_ADMIN_KEY: key };
    const reader = (await keysJson(remote, '--url', url, 'list')).find((k: { name: string }) => k.name === 'reader');
    expect(reader).toMatchObject({ status: 'active', scopes: ['read'], lastUsedAt: expect.any(String) });
    const from = new Date(Date.now() - 3_600_000).toISOString();
    const to = new Date(Date.now() + 60_000).toISOString();
    const usage = await keysCli(remote, '--url', url, 'usage', reader.id, '--from', from, '--to', to);
    expect(usage.code).toBe(0);
    const [header, ...rows] = usage.out.trim().split('\n');
    expect(header).toBe('start,operations,refused,points,refunded,errors');
    // The reader's three requests (its greeting, the apiKeys it may not read, its dry run), counted by the app's first run and written when it stopped.
    expect(rows.reduce((n, row) => n + Number(row.split(',')[1]), 0)).toBe(3);
  }, 60_000);

  it('runs the README\'s Express example as written: the same context, plugin and handlers', async () => {
    writeFileSync(path.join(dir, 'express.mjs'), readmeBlock('express.mjs'));
    const app = await startApp(dir, 'express.mjs', { PORT: '0', DATA_DIR: path.join(dir, '.data-express') });
    running.push(app.child);
    expect((await post(app.url, '{ ping }')).status).toBe(401);
    expect((await post(app.url, '{ ping }', app.key)).body.data).toEqual({ ping: 'pong' });
    const second = await post(app.url, '{ ping }', app.key);
    expect(second.body.errors[0].extensions).toMatchObject({ code: 'RATE_LIMITED', coordinate: 'Query.ping' });
    // Each line is written as its response ends, which the client may see first.
    for (let i = 0; i < 200 && accessLines(app.out()).length < 3; i++) await new Promise((r) => setTimeout(r, 25));
    const lines = accessLines(app.out());
    expect(lines.map((l) => [l.method, l.path, l.status, l.ip, l.gates, l.reason])).toEqual([
      ['POST', '/graphql', 401, '127.0.0.1', ['key'], 'missing'],
      ['POST', '/graphql', 200, '127.0.0.1', undefined, undefined],
      ['POST', '/graphql', 200, '127.0.0.1', ['field:Query.ping'], undefined],
    ]);
    await expectOperations(new URL(app.url).origin);
    // The package ships the built console; served from the owner's app, with its headers.
    const base = app.url.replace(/\/graphql$/, '');
    const page = await fetch(`${base}/admin/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-security-policy')).toMatch(/script-src 'self'/);
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(await page.text()).toContain('<script type="module" src="./app.js">');
    const script = await fetch(`${base}/admin/app.js`);
    expect(script.status).toBe(200);
    expect(script.headers.get('content-type')).toMatch(/javascript/);
  }, 120_000);
});
