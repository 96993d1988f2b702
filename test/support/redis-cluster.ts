import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { killGroup, stopChild } from './processes';
import { startRedisServer, type RedisServer } from './redis-server';

const run = promisify(execFile);

/** Whether something on 127.0.0.1 accepts on `port`. */
function listening(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: '127.0.0.1', port, timeout: 300 });
    socket.once('connect', () => (socket.destroy(), resolve(true)));
    socket.once('timeout', () => (socket.destroy(), resolve(false)));
    socket.once('error', () => resolve(false));
  });
}

export type RedisCluster = {
  nodes: { host: string; port: number }[];
  /** REDIS_CLUSTER_NODES's form: host:port,host:port,… */
  seeds: string;
  /** The master serving a key's slot. */
  masterFor(key: string): Promise<number>;
  /** SIGKILL one node. */
  kill(port: number): Promise<void>;
  /** Waits until every live node reports cluster_state:ok with every slot served. */
  healthy(timeoutMs?: number): Promise<void>;
  stop(): Promise<void>;
};

/**
 * A Redis Cluster of this test run's own: three masters and three replicas of this machine's
 * redis-server, joined by `redis-cli --cluster create`. A short node timeout lets a replica take
 * over a killed master in a few seconds.
 */
export async function startRedisCluster(options: { nodeTimeoutMs?: number } = {}): Promise<RedisCluster> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-cluster-'));
  // Each node binds its own port (and bus port +10000), retried when taken: see redis-server.ts.
  const servers: RedisServer[] = [];
  const ports: number[] = [];
  const pidOf = (port: number) => servers[ports.indexOf(port)].pid;
  const cli = (port: number, ...args: string[]) => run('redis-cli', ['-p', String(port), ...args], { timeout: 2000 }).then((r) => r.stdout.trim());
  const stopAll = async () => {
    await Promise.all(servers.map((s) => stopChild(s.child)));
    rmSync(dir, { recursive: true, force: true });
  };
  const dead = new Set<number>();
  try {
    for (let i = 0; i < 6; i++) {
      const server = await startRedisServer(dir, [
        '--cluster-enabled', 'yes', '--cluster-config-file', path.join(dir, `nodes-${i}.conf`),
        '--cluster-node-timeout', String(options.nodeTimeoutMs ?? 2000),
        // Replicas sync at once (the default waits 5 s): a replica that never synced cannot take over.
        '--repl-diskless-sync-delay', '0',
      ]);
      servers.push(server);
      ports.push(server.port);
    }
    await run('redis-cli', ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'], { timeout: 20_000 });
  } catch (error) {
    await stopAll();
    throw error;
  }
  const cluster: RedisCluster = {
    nodes: ports.map((port) => ({ host: '127.0.0.1', port })),
    seeds: ports.map((p) => `127.0.0.1:${p}`).join(','),
    async masterFor(key) {
      const live = ports.find((p) => !dead.has(p))!;
      const slot = Number(await cli(live, 'cluster', 'keyslot', key));
      // CLUSTER NODES: id host:port@bus flags master ping pong epoch state slot-ranges…
      for (const line of (await cli(live, 'cluster', 'nodes')).split('\n')) {
        const fields = line.split(' ');
        if (!fields[2]?.includes('master') || fields[2].includes('fail') || dead.has(Number(fields[1].split(':')[1].split('@')[0]))) continue;
        for (const range of fields.slice(8)) {
          const [from, to = from] = range.split('-').map(Number);
          if (slot >= from && slot <= to) return Number(fields[1].split(':')[1].split('@')[0]);
        }
      }
      throw new Error(`no master serves slot ${slot}`);
    },
    async kill(port) {
      killGroup(pidOf(port));
      dead.add(port);
      while (await listening(port)) await new Promise((r) => setTimeout(r, 25));
    },
    async healthy(timeoutMs = 20_000) {
      const until = Date.now() + timeoutMs;
      for (;;) {
        const states = await Promise.all(ports.filter((p) => !dead.has(p)).map((p) => cli(p, 'cluster', 'info').catch(() => '')));
        if (states.every((s) => s.includes('cluster_state:ok') && s.includes('cluster_slots_ok:16384'))) return;
        if (Date.now() > until) throw new Error(`the Redis Cluster did not become healthy:\n${states.join('\n')}`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
    stop: stopAll,
  };
  try {
    await cluster.healthy();
    // …and every replica holds its master's data, so a killed master can be replaced.
    const until = Date.now() + 20_000;
    for (const port of ports) {
      while (/role:slave/.test(await cli(port, 'info', 'replication')) && !/master_link_status:up/.test(await cli(port, 'info', 'replication'))) {
        if (Date.now() > until) throw new Error(`the replica on ${port} did not sync`);
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  } catch (error) {
    await stopAll();
    throw error;
  }
  return cluster;
}
