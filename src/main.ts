import { ConfigError, loadConfig } from './config';
import { createServer } from './app/server';
import { printAdminKey, writeAdminKeyFile } from './tollgate';
import { sourceEditedSinceBuild } from './app/stale-build';
import { errorFields } from './log-error';

/** How long a stop may drain in-flight requests before the process gives up on them. */
const DRAIN_LIMIT_MS = 15_000;

async function main() {
  const edited = sourceEditedSinceBuild(__filename);
  if (edited) process.stderr.write(`Warning: ${edited} changed after the last build, and this server runs the build (dist/). Run \`npm run build\` first, or \`npm run dev\` while editing.\n`);
  const config = loadConfig();
  const server = await createServer({ config, purpose: 'tollgate server' });
  let url: string;
  try {
    url = await server.listen();
  } catch (error) {
    await server.close().catch(() => undefined);
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EADDRINUSE') throw new ConfigError(`PORT: ${config.host}:${config.port} is already in use; stop what listens there or choose another PORT`);
    if (code === 'EADDRNOTAVAIL' || code === 'ENOTFOUND') throw new ConfigError(`HOST: cannot listen on "${config.host}" (${code})`);
    throw error;
  }
  // Signals are handled before anything says the server is up: whoever reads "serving" may stop
  // it at once, and a signal that arrives before its handler kills the process outright.
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.logger.info({ signal }, 'shutting down: draining in-flight requests');
    const force = setTimeout(() => {
      server.logger.error({ limitMs: DRAIN_LIMIT_MS }, 'in-flight requests did not finish in time; exiting');
      process.exit(1);
    }, DRAIN_LIMIT_MS);
    force.unref();
    server.close().then(
      () => {
        server.logger.info('stopped');
        process.exitCode = 0;
        // pino writes synchronously to stdout; exit now rather than wait for stray timers.
        process.exit(0);
      },
      (err: unknown) => {
        server.logger.error({ err }, 'error during shutdown');
        process.exit(1);
      },
    );
  };
  // Last line of defence: a stray rejection is logged, not allowed to take the server down.
  process.on('unhandledRejection', (reason) => server.logger.error({ err: reason }, 'unhandled rejection'));
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
  if (server.transport.https) {
    // A renewed certificate (certbot, cert-manager) without a restart: `kill -HUP <pid>`.
    process.on('SIGHUP', () => {
      try {
        server.reloadTls();
        server.logger.info('TLS certificate and key reloaded (SIGHUP)');
      } catch (error) {
        server.logger.error({ err: errorFields(error) }, 'TLS reload failed; still serving the previous certificate');
      }
    });
  }
  // Only once the server really serves: a failed start must not print a key it never shows again.
  if (config.bootstrapAdminKey) {
    // A signal during this closes the database under it: that is a shutdown, not a failed start.
    const secret = await server.tollgate.createFirstAdminKey().catch((error: unknown) => {
      if (stopping) return null;
      throw error;
    });
    if (secret && config.bootstrapAdminKeyFile) {
      writeAdminKeyFile(config.bootstrapAdminKeyFile, secret);
      server.logger.info({ file: config.bootstrapAdminKeyFile }, 'first admin key written to BOOTSTRAP_ADMIN_KEY_FILE (mode 0600); read it, store it, delete the file');
    } else if (secret) {
      // Printed to the terminal once, deliberately not through the logger: logs never hold secrets.
      printAdminKey(secret);
    }
  }
  const { transport } = server;
  server.logger.info(
    {
      url: `${url}/graphql`,
      database: server.database.kind,
      limiterStore: server.store.kind,
      https: transport.https,
      requireHttps: transport.requireHttps ? 'on: keys over plain HTTP are refused (REQUIRE_HTTPS)' : 'off: keys are accepted over plain HTTP (REQUIRE_HTTPS=true to refuse them)',
      ...(transport.cors.length ? { corsOrigins: transport.cors } : {}),
      metrics: transport.metrics,
    },
    'Tollgate is serving',
  );
}

main().catch((err) => {
  // A cause outside the code (configuration, database, port) gets one line naming it; only a
  // bug gets a stack trace.
  process.stderr.write(err instanceof ConfigError ? `Tollgate cannot start: ${err.message}\n` : `Tollgate failed to start: ${err instanceof Error ? err.stack : String(err)}\n`);
  process.exit(1);
});
