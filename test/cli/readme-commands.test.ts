import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Readable } from 'node:stream';
import { runKeysCli } from '../../src/cli/keys';
import { openDatabase } from '../../src/db/client';
import { startTestServer, type TestServer } from '../support/harness';
import { execTracked } from '../support/processes';
import { createScratchDatabase, describeIf, hasPostgres } from '../support/services';

// The README's `npm run keys` examples, run as written, in the README's order, on a database of
// their own with a server on it for the --url lines (only the placeholders are filled in: the ids
// earlier lines printed, the server's real address). bash reads each line — quoting, comments,
// an environment variable before the command, `< file` — and hands the CLI's arguments, that
// variable and its standard input to the CLI, run here: through npm and tsx each line took 10 s
// and more on a loaded machine (25 lines: over five minutes). One test runs `npm run keys` itself.
const root = path.resolve(__dirname, '..', '..');

/** Every `npm run keys` line of the README's sh blocks (an environment variable may come first). */
function readmeKeysCommands(): string[] {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  return [...readme.matchAll(/```sh\n([\s\S]*?)```/g)]
    .flatMap((m) => m[1].split('\n'))
    .map((line) => line.trim())
    .filter((line) => /^(\w+=\S+ )?npm run keys -- /.test(line));
}

const run = (file: string, args: string[], env: Record<string, string>) =>
  execTracked(file, args, { cwd: root, env: { ...process.env, NODE_OPTIONS: '', ...env }, timeoutMs: 60_000 });

/** What bash makes of a README line: the CLI's arguments, TOLLGATE_ADMIN_KEY, standard input. */
const SHOW_CALL = `node -e 'process.stdout.write(JSON.stringify({ argv: process.argv.slice(1), adminKey: process.env.TOLLGATE_ADMIN_KEY ?? null, stdin: require("fs").readFileSync(0, "utf8") }))' --`;
async function asBashReadsIt(line: string, env: Record<string, string>) {
  const { code, stdout, stderr } = await run('bash', ['-c', line.replace('npm run keys --', SHOW_CALL)], env);
  if (code !== 0) throw new Error(`bash could not read ${line}: ${stderr}`);
  return JSON.parse(stdout) as { argv: string[]; adminKey: string | null; stdin: string };
}

describeIf(hasPostgres(), 'Postgres (TEST_DATABASE_URL)', 'README: the keys CLI examples', () => {
  let scratch: Awaited<ReturnType<typeof createScratchDatabase>>;
  let server: TestServer;
  let close: () => Promise<void>;
  let dir: string;

  beforeAll(async () => {
    scratch = await createScratchDatabase();
    const handle = await openDatabase({ url: scratch.url, dataDir: 'unused' });
    server = await startTestServer({ database: { ...handle, queries: [], dispose: handle.close } });
    close = async () => {
      await server.close();
      await handle.close();
    };
    dir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-readme-cli-'));
    writeFileSync(path.join(dir, 'admin-key.txt'), `${server.adminKey}\n`);
  });
  afterAll(async () => {
    await close?.();
    await scratch?.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('has examples for keys, consumers, plans and usage', () => {
    const commands = readmeKeysCommands().map((c) => /npm run keys -- (?:--url \S+ (?:--key-stdin )?)?(\S+)/.exec(c)![1]);
    for (const command of ['create', 'list', 'show', 'update', 'rotate', 'revoke', 'audit', 'create-plan', 'update-plan', 'plans', 'create-consumer', 'update-consumer', 'consumers', 'show-consumer', 'usage', 'top']) {
      expect(commands).toContain(command);
    }
  });

  it('every `npm run keys` example works as written', async () => {
    const ids: { key?: string; consumer?: string; plan?: string } = {};
    for (const command of readmeKeysCommands()) {
      const line = command
        .replaceAll('<key id>', ids.key ?? '<no key yet>')
        .replaceAll('<consumer id>', ids.consumer ?? '<no consumer yet>')
        .replaceAll('<plan id>', ids.plan ?? '<no plan yet>')
        .replaceAll('http://127.0.0.1:4000', server.url)
        .replace('< admin-key.txt', `< ${path.join(dir, 'admin-key.txt')}`);
      const call = await asBashReadsIt(line, { KEY: server.adminKey });
      const out: string[] = [];
      const err: string[] = [];
      const env = { DATABASE_URL: scratch.url, ...(call.adminKey === null ? {} : { TOLLGATE_ADMIN_KEY: call.adminKey }) };
      const code = await runKeysCli(call.argv, (l) => out.push(l), env, Readable.from([call.stdin]), (l) => err.push(l));
      const stdout = out.join('\n');
      expect({ command, code, error: err.find((l) => l.startsWith('error: ')) }).toEqual({ command, code: 0, error: undefined });
      // The ids the later lines' placeholders stand for: the first key made, the plan, the consumer.
      if (/ create-plan /.test(command)) ids.plan = /^id: +(\S+)$/m.exec(stdout)![1];
      else if (/ create-consumer /.test(command)) ids.consumer = /^consumer: (\S+)/m.exec(stdout)![1];
      else if (/ create /.test(command)) ids.key ??= /^id: +(\S+)$/m.exec(stdout)![1];
    }
    expect(ids).toEqual({ key: expect.any(String), consumer: expect.any(String), plan: expect.any(String) });
  }, 120_000);

  it('`npm run keys` is the command the README says: through npm and tsx, against the same database', async () => {
    const { code, stdout, stderr } = await run('npm', ['run', '--silent', 'keys', '--', 'list', '--json'], { DATABASE_URL: scratch.url });
    expect({ code, stderr }).toEqual({ code: 0, stderr: '' });
    expect(JSON.parse(stdout)).toEqual(expect.arrayContaining([expect.objectContaining({ name: 'staging', status: 'active' })]));
  }, 90_000);
});
