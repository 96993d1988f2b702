import { ConfigError, loadConfig } from './config';
import { bootstrapAdminKey } from './keys/bootstrap';
import { createServer } from './server';

async function main() {
  const config = loadConfig();
  const server = await createServer({ config });
  if (config.bootstrapAdminKey) {
    const secret = await bootstrapAdminKey(server.keys, config.scopes);
    // Printed to the terminal once, deliberately not through the logger: logs never hold secrets.
    if (secret) process.stdout.write(`\nAdmin API key (shown once, store it now): ${secret}\n\n`);
  }
  const url = await server.listen();
  server.logger.info({ url: `${url}/graphql`, database: server.database.kind, limiterStore: server.store.kind }, 'Tollgate is serving');

  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.logger.info({ signal }, 'shutting down: draining in-flight requests');
    const force = setTimeout(() => process.exit(1), 15_000);
    force.unref();
    server.close().then(
      () => process.exit(0),
      (err) => {
        server.logger.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  // Last line of defence: a stray rejection is logged, not allowed to take the server down.
  process.on('unhandledRejection', (reason) => server.logger.error({ err: reason instanceof Error ? { message: reason.message, stack: reason.stack } : reason }, 'unhandled rejection'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

main().catch((err) => {
  if (err instanceof ConfigError) {
    process.stderr.write(`${err.message}\n`);
  } else {
    process.stderr.write(`Tollgate failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
  }
  process.exit(1);
});
