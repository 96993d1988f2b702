import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { stopChild } from './processes';
import { startRedisServer, type RedisServer } from './redis-server';

/**
 * A TCP port on 127.0.0.1 that was free a moment ago (asked of the kernel, then released). Only
 * for a port that must stay *closed* (a "connection refused" case): another process may take it
 * before it is used, so never hand it to a child to bind — let the child bind port 0 and read it back.
 */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = net.createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as net.AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

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
