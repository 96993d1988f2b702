import { loadConfig } from '../config';
import { openDatabase } from '../db/client';

/** `npm run db:migrate`: applies drizzle/ to the configured database (the server also does it on start). */
async function main() {
  const config = loadConfig();
  const database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, poolSize: 1 });
  await database.migrate();
  await database.close();
  console.log(`migrations applied (${database.kind})`);
}

main().catch((err) => {
  console.error(err instanceof Error ? err.message : err);
  process.exitCode = 1;
});
