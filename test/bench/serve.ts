// One benchmark server in its own process, so the load generator never shares its event loop.
// Configured by the environment like the real thing; BENCH_BARE=1 turns every gate off.
// Prints one JSON line ({ url, key }) when it is listening.
import { loadConfig } from '../../src/config';
import { createServer } from '../../src/app/server';

async function main() {
  const config = loadConfig({ ...process.env, PORT: '0', LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? 'silent', IP_LIMIT: '1000000000', BOOTSTRAP_ADMIN_KEY: 'false' });
  const server = await createServer({ config, gates: process.env.BENCH_BARE !== '1' });
  // A key whose budgets never run out: the bench measures the gates' cost, not their refusals.
  const huge = { limit: 1_000_000_000, duration: 60 };
  const limits = [...server.tollgate.services.limitedCoordinates].map((coordinate) => ({ coordinate, ...huge }));
  const created = await server.keys.create({ name: `bench ${Date.now()}`, scopes: ['read', 'write'], limits, budget: { points: 1_000_000_000, duration: 60 } }, null);
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
