import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';

/** A free TCP port on 127.0.0.1 (asked of the kernel, then released). */
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
 * A redis-server of the test's own, on a free port, that the test may kill, freeze (SIGSTOP) and
 * restore (SIGCONT) — the machine's shared Redis is never touched.
 */
export async function startPrivateRedis() {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-redis-'));
  const port = await freePort();
  const pidfile = path.join(dir, 'redis.pid');
  const start = async () => {
    execFileSync('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'yes', '--pidfile', pidfile, '--dir', dir, '--logfile', path.join(dir, 'log')]);
    await waitFor(() => answers(port), 5000, `redis-server on ${port}`);
  };
  const pid = () => Number(readFileSync(pidfile, 'utf8').trim());
  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    /** SIGSTOP: the process keeps its sockets open and answers nothing. */
    freeze: () => process.kill(pid(), 'SIGSTOP'),
    thaw: () => process.kill(pid(), 'SIGCONT'),
    /** SIGKILL, then wait until the port is closed. */
    async kill() {
      const p = pid();
      process.kill(p, 'SIGCONT');
      process.kill(p, 'SIGKILL');
      await waitFor(() => !answers(port), 5000, 'redis to die');
    },
    restart: start,
    async stop() {
      try {
        const p = pid();
        process.kill(p, 'SIGCONT');
        process.kill(p, 'SIGKILL');
      } catch {
        // already gone
      }
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
