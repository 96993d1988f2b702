import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { PgDatabase, PgQueryResultHKT } from 'drizzle-orm/pg-core';
import * as schema from './schema';
import type { Migrations } from './migrate';
import { lockDataDir, recordServingUrl } from './data-dir-lock';
import { copyTemplateInto, loadTemplate } from './pglite-template';
import { StartupError } from '../config';

export type Database = PgDatabase<PgQueryResultHKT, typeof schema>;

export type DatabaseHandle = {
  db: Database;
  kind: 'pglite' | 'postgres';
  /** Runs `select 1`: used by /ready. */
  ping(): Promise<void>;
  /** Applies a migrations folder (idempotent: applied migrations are recorded). */
  migrate(migrations: Migrations): Promise<void>;
  /**
   * An embedded folder's lock records the address its holder serves on (the CLI, or a second
   * server, refused the folder, is told to go there). Absent for Postgres: nothing is locked.
   */
  servingAt?(url: string): void;
  close(): Promise<void>;
};

export type DatabaseOptions = {
  /** postgres:// URL; without it an embedded PGlite database is used. */
  url?: string;
  /** PGlite data folder; `memory://` keeps it in memory (tests). */
  dataDir: string;
  poolSize?: number;
  /** Who holds the embedded folder (shown to a second opener): "tollgate server", "keys CLI". */
  purpose?: string;
  /**
   * How long connecting, or one statement, may take (postgres.js has no limit of its own and
   * retries with growing delays: with Postgres down, queries would queue for minutes).
   */
  timeoutMs?: number;
  /** Called once per SQL statement Drizzle sends, and per ping (tests count queries with it). */
  onQuery?: (query: string) => void;
};

/**
 * Why Postgres could not be used, in one line that names the variable and the real cause
 * (Drizzle wraps the driver's error as "Failed query: CREATE SCHEMA …", which says neither).
 */
export function explainDatabaseFailure(error: unknown, url: string, timeoutMs: number): string {
  const target = new URL(url);
  const where = `${target.hostname}:${target.port || 5432}`;
  const database = decodeURIComponent(target.pathname.slice(1)) || 'postgres';
  let cause = error as { code?: unknown; message?: unknown; cause?: unknown } | null | undefined;
  for (let depth = 0; cause && typeof cause === 'object' && depth < 4; depth++) {
    const code = cause.code;
    if (code === 'ECONNREFUSED') return `DATABASE_URL: cannot connect to ${where} (connection refused): is Postgres running there?`;
    if (code === 'ENOTFOUND' || code === 'EAI_AGAIN') return `DATABASE_URL: host "${target.hostname}" not found`;
    if (code === 'CONNECT_TIMEOUT' || code === 'CONNECTION_CLOSED' || code === 'ECONNRESET') {
      return `DATABASE_URL: no Postgres answered at ${where} within ${timeoutMs} ms (DATABASE_TIMEOUT_MS); is that port a Postgres server?`;
    }
    if (code === '3D000') return `DATABASE_URL: database "${database}" does not exist on ${where}; create it (createdb ${database}) or name another`;
    if (code === '28P01' || code === '28000') return `DATABASE_URL: Postgres at ${where} refused the credentials: ${String(cause.message)}`;
    if (typeof code === 'string' && /^[0-9A-Z]{5}$/.test(code)) return `DATABASE_URL: Postgres at ${where} refused: ${String(cause.message)} (${code})`;
    cause = cause.cause as typeof cause;
  }
  return `DATABASE_URL: could not use Postgres at ${where}: ${error instanceof Error ? error.message.split('\n')[0] : String(error)}`;
}

/** Shared buffers of an embedded database: Postgres' page cache (2 048 pages of 8 kB). */
export const PGLITE_SHARED_BUFFERS = '16MB';

export async function openDatabase(options: DatabaseOptions): Promise<DatabaseHandle> {
  const logger = options.onQuery ? { logQuery: (query: string) => options.onQuery!(query) } : undefined;
  if (options.url) {
    const { default: postgres } = await import('postgres');
    const { drizzle } = await import('drizzle-orm/postgres-js');
    const { migrate } = await import('drizzle-orm/postgres-js/migrator');
    const timeoutMs = options.timeoutMs ?? 2000;
    const client = postgres(options.url, {
      max: options.poolSize ?? 10,
      onnotice: () => {},
      connect_timeout: timeoutMs / 1000,
      // The server cancels a statement that runs (or waits for a lock) longer than this.
      connection: { statement_timeout: timeoutMs * 2 },
    });
    const db = drizzle(client, { schema, logger }) as unknown as Database;
    return {
      db,
      kind: 'postgres',
      ping: async () => {
        options.onQuery?.('select 1');
        await client`select 1`;
      },
      migrate: (m) => migrate(drizzle(client), { migrationsFolder: m.folder, migrationsTable: m.table, migrationsSchema: m.schema }).catch((error: unknown) => {
        throw new StartupError(explainDatabaseFailure(error, options.url!, timeoutMs));
      }),
      close: () => client.end({ timeout: 5 }),
    };
  }
  // require, not import(): the bundled server (start.cjs) leaves PGlite outside the bundle (it finds
  // its WebAssembly beside itself), and a dynamic import() cannot run from V8's code cache on Node 20;
  // drizzle's adapter is required too, so both load PGlite's CommonJS build (one copy, not two).
  const { PGlite } = require('@electric-sql/pglite') as typeof import('@electric-sql/pglite');
  const { drizzle } = require('drizzle-orm/pglite') as typeof import('drizzle-orm/pglite');
  const { migrate } = require('drizzle-orm/pglite/migrator') as typeof import('drizzle-orm/pglite/migrator');
  let unlock = () => {};
  if (!options.dataDir.startsWith('memory://')) {
    mkdirSync(path.dirname(path.resolve(options.dataDir)), { recursive: true });
    unlock = lockDataDir(options.dataDir, options.purpose ?? `${path.basename(process.argv[1] ?? 'node')}`);
    mkdirSync(path.resolve(options.dataDir), { recursive: true });
  }
  // A new cluster starts from the installed template instead of running initdb (pglite-template.ts):
  // a new folder gets a copy of it, an in-memory one is loaded from its tarball.
  const inMemory = options.dataDir.startsWith('memory://');
  const isNew = inMemory || !existsSync(path.join(path.resolve(options.dataDir), 'PG_VERSION'));
  const template = isNew && (inMemory || !copyTemplateInto(path.resolve(options.dataDir))) ? loadTemplate() : undefined;
  // Postgres zeroes its shared buffers on every start, and PGlite's clusters ask for 128 MB: about
  // 0.2 s of each start here. One embedded process with small tables does not need that cache.
  const startParams = [...PGlite.defaultStartParams, '-c', `shared_buffers=${PGLITE_SHARED_BUFFERS}`];
  const client = await PGlite.create(options.dataDir, { startParams, ...(template ? { loadDataDir: template } : {}) }).catch((error: unknown) => {
    unlock();
    throw error;
  });
  const db = drizzle(client, { schema, logger }) as unknown as Database;
  return {
    db,
    kind: 'pglite',
    ping: async () => {
      options.onQuery?.('select 1');
      await client.query('select 1');
    },
    migrate: async (m) => void (await migrate(drizzle(client), { migrationsFolder: m.folder, migrationsTable: m.table, migrationsSchema: m.schema })),
    servingAt: inMemory ? undefined : (url) => recordServingUrl(options.dataDir, url),
    close: async () => {
      try {
        await client.close();
      } finally {
        unlock();
      }
    },
  };
}

/** Rows a statement changed, from either driver (postgres.js: count; PGlite: affectedRows). */
export function rowsAffected(result: unknown): number {
  const r = result as { count?: number; affectedRows?: number };
  return r.count ?? r.affectedRows ?? 0;
}
