import { defineConfig } from 'drizzle-kit';

// `npm run db:generate` writes Tollgate's SQL migrations to drizzle/tollgate/; they are applied on
// start by both PGlite and postgres.js (src/db/migrate.ts), tracked in tollgate.__migrations.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/db/schema.ts',
  out: './drizzle/tollgate',
  schemaFilter: ['tollgate'],
});
