import type { ChildProcess } from 'node:child_process';
import path from 'node:path';
import { spawnTracked } from './processes';

// The real server process from source (node + tsx, src/main.ts): the code `npm start` runs compiled.
const root = path.resolve(__dirname, '..', '..');

type Running = { child: ChildProcess; stdout: string[]; stderr: string[]; exit: Promise<{ code: number | null; at: number }> };

/**
 * `command`: node's arguments, the sources through tsx unless a test runs something else (`npm start`'s src/start.cjs).
 * A tracked child (processes.ts): killed with its test file if the test never stops it.
 */
export function start(env: Record<string, string>, command: string[] = ['--import', 'tsx', 'src/main.ts']): Running {
  const child = spawnTracked(process.execPath, command, {
    cwd: root,
    env: { PATH: process.env.PATH, NODE_OPTIONS: '', LOG_LEVEL: 'info', PORT: '0', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const stdout: string[] = [];
  const stderr: string[] = [];
  collectLines(child.stdout!, stdout);
  collectLines(child.stderr!, stderr);
  const exit = new Promise<{ code: number | null; at: number }>((resolve) => child.once('exit', (code) => resolve({ code, at: Date.now() })));
  return { child, stdout, stderr, exit };
}

/** Whole lines only: a chunk can end mid-line, and its rest arrives with the next chunk. */
function collectLines(stream: NodeJS.ReadableStream, into: string[]) {
  let rest = '';
  stream.setEncoding('utf8');
  stream.on('data', (chunk: string) => {
    const lines = (rest + chunk).split('\n');
    rest = lines.pop()!;
    into.push(...lines.filter(Boolean));
  });
  stream.on('end', () => rest && into.push(rest));
}

export async function serving(p: Running, timeoutMs = 30_000): Promise<{ url: string; adminKey?: string }> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const line = p.stdout.map((l) => (l.startsWith('{') ? JSON.parse(l) : null)).find((l) => l?.msg === 'Tollgate is serving');
    if (line) {
      const adminKey = p.stdout.join('\n').match(/shown once, store it now\): (\S+)/)?.[1];
      return { url: String(line.url).replace(/\/graphql$/, ''), adminKey };
    }
    if (p.child.exitCode !== null) throw new Error(`exited early: ${p.stderr.join('\n')}`);
    if (Date.now() > deadline) throw new Error(`never served: ${p.stderr.join('\n')}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

