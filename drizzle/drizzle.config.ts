import { defineConfig } from 'drizzle-kit';

// `npm run db:generate` writes SQL migrations next to this file. The same folder is applied
// on start by both PGlite and postgres.js (src/db/migrate.ts).
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './drizzle',
});
