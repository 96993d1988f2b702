import { readFileSync } from 'node:fs';
import path from 'node:path';
import { sql } from 'drizzle-orm';
import { openDatabase } from '../../src/db/client';
import { tollgateMigrations } from '../../src/db/migrate';
import { hashKey, generateKey, displayStart } from '../../src/keys/format';
import { startTestServer } from '../support/harness';
import { createScratchDatabase, databaseBackends } from '../support/services';

// A database created by the migration Tollgate shipped before its tables had their own schema
// (test/fixtures/legacy-0000_init.sql: api_keys, audit_events and the weather tables, all in
// public) migrates forward on the next start without losing a key, an audit row or a station.
const legacy = readFileSync(path.join(__dirname, '..', 'fixtures', 'legacy-0000_init.sql'), 'utf8').split('--> statement-breakpoint');

describe.each(databaseBackends())('migrating a database from before the tollgate schema, on %s', (backend) => {
  it('moves keys and audit rows into tollgate.*, keeps the example tables, and the old key still works', async () => {
    const scratch = backend === 'postgres' ? await createScratchDatabase() : null;
    const handle = await openDatabase({ url: scratch?.url, dataDir: 'memory://' });
    try {
      for (const statement of legacy) await handle.db.execute(sql.raw(statement));
      const secret = generateKey('tg');
      await handle.db.execute(sql`insert into api_keys (name, start, hash, scopes) values ('legacy admin', ${displayStart(secret, 'tg')}, ${hashKey(secret)}, ${'{admin,read,write}'}::text[])`);
      await handle.db.execute(sql`insert into audit_events (action, details) values ('key.created', '{}'::jsonb)`);
      await handle.db.execute(sql`insert into stations (id, name, country, latitude, longitude, elevation) values ('OLD', 'Legacy station', 'XX', 0, 0, 1)`);

      const t = await startTestServer({ database: { ...handle, queries: [], dispose: async () => {} } });
      try {
        const me = await t.gql('{ me { name scopes } }', {}, secret);
        expect(me.body.data.me).toEqual({ name: 'legacy admin', scopes: ['admin', 'read', 'write'] });
        const rows = (n: string) => handle.db.execute(sql.raw(`select count(*)::int as n from ${n}`)).then((r) => Number(((Array.isArray(r) ? r : (r as { rows: unknown[] }).rows)[0] as { n: number }).n));
        expect(await rows('tollgate.api_keys')).toBeGreaterThanOrEqual(1);
        expect(await rows('tollgate.audit_events')).toBeGreaterThanOrEqual(1);
        const gone = await handle.db.execute(sql.raw(`select to_regclass('public.api_keys') as t`));
        expect(((Array.isArray(gone) ? gone : (gone as { rows: unknown[] }).rows)[0] as { t: unknown }).t).toBeNull();
        // the example's own tables kept their rows, and its seed did not duplicate them
        expect((await t.gql('{ station(id: "OLD") { name } }', {}, secret)).body.data.station).toEqual({ name: 'Legacy station' });
        // and migrating again changes nothing
        await handle.migrate(tollgateMigrations);
        expect((await t.gql('{ me { name } }', {}, secret)).status).toBe(200);
      } finally {
        await t.close();
      }
    } finally {
      await handle.close();
      await scratch?.drop();
    }
  });
});
