// One benchmark server in its own process, so the load generator never shares its event loop.
// Configured by the environment like the real thing; BENCH_BARE=1 turns every gate off;
// BENCH_CONSUMER=1 puts the key under a consumer on a plan of three windows and a daily quota.
// Prints one JSON line ({ url, key }) when it is listening.
import { loadConfig } from '../../src/config';
import { createServer } from '../../src/app/server';

async function main() {
  const config = loadConfig({ ...process.env, PORT: '0', LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'silent', IP_LIMIT: '1000000000', BOOTSTRAP_ADMIN_KEY: 'false' });
  const server = await createServer({ config, gates: process.env.BENCH_BARE !== '1' });
  // A key whose budgets never run out: the bench measures the gates' cost, not their refusals.
  const huge = { limit: 1_000_000_000, duration: 60 };
  const limits = [...server.tollgate.services.limitedCoordinates].map((coordinate) => ({ coordinate, ...huge }));
  let consumerId: string | undefined;
  if (process.env.BENCH_CONSUMER === '1') {
    const { consumers } = server.tollgate.services;
    const windows = [60, 3600, 86_400].map((duration) => ({ points: 1_000_000_000, duration }));
    const plan = await consumers.createPlan({ name: 'bench', budgets: windows, quotas: [{ points: 1_000_000_000, period: 'DAY' }], limits }, null);
    if (!plan.ok) throw new Error(plan.message);
    const consumer = await consumers.createConsumer({ name: 'bench', planId: plan.value.id }, null);
    if (!consumer.ok) throw new Error(consumer.message);
    consumerId = consumer.value.id;
  }
  const created = await server.keys.create(
    consumerId ? { name: `bench ${Date.now()}`, scopes: ['read', 'write'], consumerId } : { name: `bench ${Date.now()}`, scopes: ['read', 'write'], limits, budget: { points: 1_000_000_000, duration: 60 } },
    null,
  );
  if (!created.ok) throw new Error(created.message);
  const url = await server.listen();
  process.stdout.write(JSON.stringify({ url, key: created.value.secret }) + '\n');
  const stop = () => void server.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main().catch((err) => {
  process.stderr.write(`bench server failed: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
