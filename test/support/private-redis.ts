import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { stopChild } from './processes';
import { startRedisServer, type RedisServer } from './redis-server';

/**
 * A port where nothing listens, for a "connection refused" case: port 1 (tcpmux), privileged and
 * bound by nothing here. Not a port asked of the kernel and released: any process binding port 0
 * (another test run on the machine) may be given that one meanwhile.
 */
export const CLOSED_PORT = 1;

async function waitFor(condition: () => boolean, timeoutMs: number, what: string) {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

const answers = (port: number) => {
  try {
    return execFileSync('redis-cli', ['-p', String(port), 'ping'], { timeout: 1000, stdio: ['ignore', 'pipe', 'ignore'] }).toString().trim() === 'PONG';
  } catch {
    return false;
  }
};

/**
 * A redis-server of the test's own, on a port it bound itself, that the test may kill, freeze
 * (SIGSTOP) and restore (SIGCONT) — the machine's shared Redis is never touched. A tracked child
 * (processes.ts): it dies with the test file or the run even if `stop` is never reached.
 */
export async function startPrivateRedis() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-redis-'));
  let server: RedisServer = await startRedisServer(dir);
  const port = server.port;
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    /** SIGSTOP: the process keeps its sockets open and answers nothing. */
    freeze: () => process.kill(server.pid, 'SIGSTOP'),
    thaw: () => process.kill(server.pid, 'SIGCONT'),
    /** SIGKILL, then wait until the port is closed. */
    async kill() {
      await stopChild(server.child);
      await waitFor(() => !answers(port), 5000, 'redis to die');
    },
    /** Starts it again on the same port. */
    async restart() {
      server = await startRedisServer(dir, [], port);
    },
    async stop() {
      await stopChild(server.child);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
