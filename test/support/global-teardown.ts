import type { RedisCluster } from './redis-cluster';

// Stops what global-setup started for this run (the local Redis Cluster, when it made one).
export default async function globalTeardown() {
  await (globalThis as { tollgateCluster?: RedisCluster }).tollgateCluster?.stop();
}
