import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execTracked } from './support/processes';
import { serving, start } from './support/server-process';

// The README's curl examples, run as written (only the port changes) against the real server
// started the way the README says, with the admin key it printed on its first start.
const root = path.resolve(__dirname, '..');

/** Every `curl …` command in the README's sh blocks, backslash-continued lines joined. */
function readmeCurls(): string[] {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const blocks = [...readme.matchAll(/```sh\n([\s\S]*?)```/g)].map((m) => m[1]);
  const commands: string[] = [];
  for (const block of blocks) {
    const joined = block.replace(/\\\n\s*/g, ' ');
    for (const line of joined.split('\n')) if (line.trim().startsWith('curl ')) commands.push(line.trim());
  }
  return commands;
}

const sh = (command: string, env: Record<string, string>) => execTracked('bash', ['-c', command], { env: { ...process.env, ...env }, timeoutMs: 20_000 });

describe('README', () => {
  let dir: string;
  let server: ReturnType<typeof start>;
  let port: number;
  let key: string;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-readme-'));
    // PORT=0: the server binds a free port itself and prints it (a port found free and handed
    // over could be taken by another run in between).
    server = start({ PORT: '0', DATA_DIR: path.join(dir, 'db') });
    const up = await serving(server);
    port = Number(new URL(up.url).port);
    key = up.adminKey!;
  });
  afterAll(async () => {
    server?.child.kill('SIGTERM');
    await server?.exit;
    rmSync(dir, { recursive: true, force: true });
  });

  it('has curl examples to run', () => {
    expect(readmeCurls().length).toBeGreaterThanOrEqual(7);
  });

  it('every curl example works as written', async () => {
    for (const command of readmeCurls()) {
      const { code, stdout } = await sh(command.replaceAll('localhost:4000', `127.0.0.1:${port}`), { KEY: key });
      expect({ command, code }).toEqual({ command, code: 0 });
      if (/ -i /.test(command)) {
        // "no key → 401", as its comment says
        expect(stdout).toMatch(/^HTTP\/1\.1 401/);
        expect(stdout).toMatch(/"code":"UNAUTHENTICATED"/);
        continue;
      }
      const body = JSON.parse(stdout);
      expect({ command, errors: body.errors }).toEqual({ command, errors: undefined });
      expect(body.data ?? body.status).toBeTruthy();
    }
  });
});
