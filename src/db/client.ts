import { mkdirSync } from 'node:fs';
import path from 'node:path';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import * as schema from './schema';
import { migrationsFolder } from './migrate';

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

export type DatabaseHandle = {
  db: Database;
  kind: 'pglite' | 'postgres';
  /** Runs `select 1`: used by /ready. */
  ping(): Promise<void>;
  migrate(): Promise<void>;
  close(): Promise<void>;
};

export type DatabaseOptions = {
  /** postgres:// URL; without it an embedded PGlite database is used. */
  url?: string;
  /** PGlite data folder; `memory://` keeps it in memory (tests). */
  dataDir: string;
  poolSize?: number;
  /** Called once per SQL statement Drizzle sends (tests count queries with it). */
  onQuery?: (query: string) => void;
};

export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  const logger = options.onQuery ? { logQuery: (query: string) => options.onQuery!(query) } : undefined;
  if (options.url) {
    const { default: postgres } = await import('postgres');
    const { drizzle } = await import('drizzle-orm/postgres-js');
    const { migrate } = await import('drizzle-orm/postgres-js/migrator');
    const client = postgres(options.url, { max: options.poolSize ?? 10, onnotice: () => {} });
    const db = drizzle(client, { schema, logger }) as unknown as Database;
    return {
      db,
      kind: 'postgres',
      ping: async () => void (await client`select 1`),
      migrate: () => migrate(drizzle(client), { migrationsFolder }),
      close: () => client.end({ timeout: 5 }),
    };
  }
  const { PGlite } = await import('@electric-sql/pglite');
  const { drizzle } = await import('drizzle-orm/pglite');
  const { migrate } = await import('drizzle-orm/pglite/migrator');
  if (!options.dataDir.startsWith('memory://')) mkdirSync(path.resolve(options.dataDir), { recursive: true });
  const client = await PGlite.create(options.dataDir);
  const db = drizzle(client, { schema, logger }) as unknown as Database;
  return {
    db,
    kind: 'pglite',
    ping: async () => void (await client.query('select 1')),
    migrate: () => migrate(drizzle(client), { migrationsFolder }),
    close: () => client.close(),
  };
}

/** Quick reachability probe used by /ready without going through Drizzle's logger. */
export async function isReachable(handle: DatabaseHandle): Promise<boolean> {
  try {
    await handle.ping();
    return true;
  } catch {
    return false;
  }
}

