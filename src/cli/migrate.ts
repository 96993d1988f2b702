import { loadConfig } from '../config';
import { openDatabase } from '../db/client';
import { tollgateMigrations } from '../db/migrate';

/** `npm run db:migrate`: applies Tollgate's migrations to the configured database (the server also does it on start). */
async function main() {
  const config = loadConfig();
  const database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, poolSize: 1, timeoutMs: config.databaseTimeoutMs, purpose: 'migrate CLI' });
  try {
    await database.migrate(tollgateMigrations);
  } finally {
    await database.close();
  }
  console.log(`migrations applied (${database.kind})`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
