import path from 'node:path';
import { spawnTracked, stopChild } from '../support/processes';
import { describeWithRedisCluster, testClusterNodes } from '../support/services';

// A process that closes its Redis Cluster client must be able to end by itself (a library owner's
// app after tollgate.close(), a test worker): found as a jest worker that "failed to exit
// gracefully", held by ioredis's slot refresh. A refresh still under way at disconnect() re-arms
// the refresh timer when it ends, and from then on the closed client tries again every second.
const root = path.resolve(__dirname, '..', '..');
const SCRIPT = `
const { createRedisClient } = require('./src/counting/store');
const nodes = process.env.NODES.split(',').map((n) => ({ host: n.split(':')[0], port: Number(n.split(':')[1]) }));
const client = createRedisClient(nodes, 'exit-test', 1000);
client.on('error', () => {});
client.once('ready', () => {
  // The client is closed while its every-second slot refresh is under way.
  const closeDuringRefresh = () => {
    if (!client.isRefreshing) return setImmediate(closeDuringRefresh);
    client.disconnect();
    console.log('closed');
  };
  closeDuringRefresh();
});
`;

describeWithRedisCluster('a closed Redis Cluster client', () => {
  it('lets its process end by itself, even when it was closed during a slot refresh', async () => {
    const child = spawnTracked(process.execPath, ['--import', 'tsx', '-e', SCRIPT], { cwd: root, env: { ...process.env, NODES: testClusterNodes(), NODE_OPTIONS: '' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout!.on('data', (c) => (out += c));
    child.stderr!.on('data', (c) => (out += c));
    const ended = new Promise<string>((resolve) => child.once('exit', (code) => resolve(`exit ${code}`)));
    // The bound is far from both outcomes: ends within a second or two, or never.
    const verdict = await Promise.race([ended, new Promise<string>((resolve) => setTimeout(() => resolve('still running'), 20_000).unref())]);
    await stopChild(child);
    expect({ verdict, out: out.trim() }).toEqual({ verdict: 'exit 0', out: 'closed' });
  }, 40_000);
});
