import { defineConfig } from 'drizzle-kit';

// The weather example's own migrations (drizzle/weather/), applied by the bundled server only.
export default defineConfig({
  dialect: 'postgresql',
  schema: './src/weather/tables.ts',
  out: './drizzle/weather',
});
