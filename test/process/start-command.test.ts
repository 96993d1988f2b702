import { execFileSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, utimesSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { serving, start } from '../support/server-process';

// `npm start` (src/start.cjs) runs the bundled build with a V8 code cache when npm install made
// one, the plain build when there is no bundle, and the sources through tsx when there is no
// build at all (an install with --ignore-scripts): it must start every way.
describe('npm start\'s command', () => {
  const root = path.resolve(__dirname, '..', '..');
  let checkout: string;
  const run = (env: Record<string, string> = {}) =>
    execFileSync(process.execPath, [path.join(checkout, 'src', 'start.cjs')], {
      env: { PATH: process.env.PATH, NODE_OPTIONS: '', NODE_PATH: path.join(root, 'node_modules'), ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    }).toString();
  const bundle = () => path.join(checkout, 'dist', 'server', 'main.js');
  const caches = () => readdirSync(path.dirname(bundle())).filter((f) => f.endsWith('.v8-cache'));
  // A bundle is CommonJS: require, module.exports and __dirname must be the file's own.
  const writeBundle = (builtAtSeconds: number) => {
    mkdirSync(path.dirname(bundle()), { recursive: true });
    writeFileSync(
      bundle(),
      "const path = require('node:path');\nmodule.exports = 1;\nprocess.stdout.write(`bundle from ${path.basename(__dirname)}`);\nif (process.env.FAIL) process.exit(1);\n",
    );
    utimesSync(bundle(), builtAtSeconds, builtAtSeconds);
  };
  beforeEach(() => {
    checkout = mkdtempSync(path.join(os.tmpdir(), 'tollgate-start-'));
    mkdirSync(path.join(checkout, 'src'));
    copyFileSync(path.join(root, 'src', 'start.cjs'), path.join(checkout, 'src', 'start.cjs'));
    // TypeScript only tsx can run: a type annotation.
    writeFileSync(path.join(checkout, 'src', 'main.ts'), "const from: string = 'sources';\nprocess.stdout.write(from);\n");
  });
  afterEach(() => rmSync(checkout, { recursive: true, force: true }));

  it('runs the sources through tsx when there is no build', () => {
    expect(run()).toBe('sources');
  });

  it('runs the build when there is one', () => {
    mkdirSync(path.join(checkout, 'dist', 'src'), { recursive: true });
    writeFileSync(path.join(checkout, 'dist', 'src', 'main.js'), "process.stdout.write('build');\n");
    expect(run()).toBe('build');
  });

  it('runs the bundle over the plain build, and keeps a code cache only after a clean exit', () => {
    mkdirSync(path.join(checkout, 'dist', 'src'), { recursive: true });
    writeFileSync(path.join(checkout, 'dist', 'src', 'main.js'), "process.stdout.write('build');\n");
    writeBundle(1_000);
    expect(() => run({ FAIL: '1' })).toThrow();
    expect(caches()).toEqual([]);
    expect(run()).toBe('bundle from server');
    expect(caches()).toHaveLength(1);
  });

  it('reuses the cache it wrote, and replaces it when the bundle is rebuilt', () => {
    writeBundle(1_000);
    run();
    const [first] = caches();
    const written = statSync(path.join(path.dirname(bundle()), first)).mtimeMs;
    expect(run()).toBe('bundle from server');
    // Accepted, so not written again.
    expect(caches()).toEqual([first]);
    expect(statSync(path.join(path.dirname(bundle()), first)).mtimeMs).toBe(written);
    writeBundle(2_000);
    expect(run()).toBe('bundle from server');
    expect(caches()).toHaveLength(1);
    expect(caches()[0]).not.toBe(first);
  });
});

// The real bundle (npm install's `prepare` builds it): esbuild must not have lost a file the
// server finds beside itself (SDL, migrations, PGlite's WebAssembly).
describe('npm start on this checkout\'s build', () => {
  const root = path.resolve(__dirname, '..', '..');
  let dir: string;
  beforeEach(() => (dir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-bundle-'))));
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('serves the example API from the bundle, then stops with 0', async () => {
    expect(existsSync(path.join(root, 'dist', 'server', 'main.js'))).toBe(true); // else: npm run build
    const p = start({ DATA_DIR: path.join(dir, 'db') }, ['src/start.cjs']);
    try {
      const { url, adminKey } = await serving(p);
      const res = await fetch(`${url}/graphql`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': adminKey! }, body: JSON.stringify({ query: '{ station(id: "LHR") { name } }' }) });
      expect(res.status).toBe(200);
      expect(await res.json()).toMatchObject({ data: { station: { name: 'London Heathrow' } } });
      expect(p.stderr.join('\n')).not.toMatch(/tsx|No build/);
    } finally {
      p.child.kill('SIGTERM');
    }
    expect((await p.exit).code).toBe(0);
  });
});
