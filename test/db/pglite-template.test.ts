import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { openDatabase } from '../../src/db/client';
import { tollgateMigrations } from '../../src/db/migrate';
import { templateFolder } from '../../src/db/pglite-template';
import { apiKeys } from '../../src/db/schema';

// A new embedded folder starts as a copy of the installed template cluster (no initdb): it must
// be a working database of its own, and nothing written to it may reach the template.
const template = templateFolder();
// initdb gives every cluster its own system identifier (pg_control's first 8 bytes): a copy shares the template's.
const systemIdentifier = (dir: string) => readFileSync(path.join(dir, 'global', 'pg_control')).subarray(0, 8).toString('hex');
const snapshot = (dir: string) => readdirSync(dir, { recursive: true }).map(String).sort().map((f) => `${f}:${statSync(path.join(dir, f)).size}:${statSync(path.join(dir, f)).mtimeMs}`);

describe('a new embedded database folder, from the installed template', () => {
  const parent = mkdtempSync(path.join(os.tmpdir(), 'tollgate-template-'));
  afterAll(() => rmSync(parent, { recursive: true, force: true }));

  it('is a working database that keeps its rows across a reopen, and leaves the template as it was', async () => {
    expect(statSync(path.join(template, 'PG_VERSION')).isFile()).toBe(true); // npm install wrote it
    const before = snapshot(template);
    const dataDir = path.join(parent, 'db');
    const first = await openDatabase({ dataDir });
    await first.migrate(tollgateMigrations);
    await first.db.insert(apiKeys).values({ name: 'kept', start: 'tg_kept', hash: 'h'.repeat(64), scopes: [] });
    await first.close();

    const again = await openDatabase({ dataDir });
    const rows = await again.db.select({ name: apiKeys.name }).from(apiKeys);
    const databases = (await again.db.execute(sql`select datname from pg_database order by datname`)) as unknown as { rows: unknown[] };
    await again.close();
    expect(rows).toEqual([{ name: 'kept' }]);
    // One database, not initdb's three: a new folder is a third of the files to copy.
    expect(databases.rows).toEqual([{ datname: 'postgres' }]);
    expect(systemIdentifier(dataDir)).toBe(systemIdentifier(template)); // copied, not initdb'd
    expect(snapshot(template)).toEqual(before);
  }, 60_000);
});
