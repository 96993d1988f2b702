import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { spawnTracked } from './processes';

// A redis-server the suite starts, in the foreground (never --daemonize: a daemon leaves our
// process group and survives an interrupted run), as a tracked child (processes.ts). Redis has
// no `--port 0`, so the port is picked at random and the server binds it itself: when another
// process holds it (or, for a cluster node, its bus port +10000), redis-server exits at once and
// another port is tried — never a port that was found free and then released for someone else.

export type RedisServer = { port: number; pid: number; child: ChildProcess; log: string };

/** A random port below the kernel's ephemeral range (32768+), whose +10000 bus port is below 65536. */
const randomPort = () => 10_000 + Math.floor(Math.random() * 20_000);

let starts = 0;

/** Starts redis-server on `port` (or on a random free one, retried), its files in `dir`. */
export async function startRedisServer(dir: string, extraArgs: string[] = [], port?: number): Promise<RedisServer> {
  for (let attempt = 0; ; attempt++) {
    const tryPort = port ?? randomPort();
    const log = path.join(dir, `redis-${tryPort}-${++starts}.log`); // fresh per start: a restart's "Ready" is its own
    const child = spawnTracked('redis-server', ['--port', String(tryPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', log, ...extraArgs], { stdio: 'ignore' });
    const outcome = await readiness(child, log);
    if (outcome === 'ready') return { port: tryPort, pid: child.pid!, child, log };
    const why = existsSync(log) ? readFileSync(log, 'utf8').trim().split('\n').slice(-2).join(' / ') : outcome;
    child.kill('SIGKILL');
    // Only a taken port is worth another try; a fixed port (a restart) is not moved.
    if (port !== undefined || attempt >= 20 || !/in use/i.test(why)) throw new Error(`redis-server on ${tryPort} did not start: ${why}`);
  }
}

/** 'ready' once the log says so; 'exited' if the server quit first; 'timeout' after 10 s. */
async function readiness(child: ChildProcess, log: string): Promise<'ready' | 'exited' | 'timeout'> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    if (existsSync(log) && /Ready to accept connections/.test(readFileSync(log, 'utf8'))) return 'ready';
    if (child.exitCode !== null || child.signalCode !== null) return 'exited';
    if (Date.now() > deadline) return 'timeout';
    await new Promise((r) => setTimeout(r, 20));
  }
}
