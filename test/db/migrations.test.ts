import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
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

// The last release's tables (tollgate.* at migration 0000, before consumers and plans): its keys,
// with their own budgets and field limits, keep working after the upgrade, and can then be put
// under a consumer.
describe.each(databaseBackends())('upgrading the last release\'s tables to consumers and plans, on %s', (backend) => {
  it('keeps every key, its budget and its limits, and a key can join a consumer afterwards', async () => {
    const scratch = backend === 'postgres' ? await createScratchDatabase() : null;
    const handle = await openDatabase({ url: scratch?.url, dataDir: 'memory://' });
    // The migrations folder as the last release shipped it: 0000 only.
    const lastRelease = mkdtempSync(path.join(os.tmpdir(), 'tollgate-last-release-'));
    try {
      cpSync(path.join(tollgateMigrations.folder, '0000_init.sql'), path.join(lastRelease, '0000_init.sql'));
      mkdirSync(path.join(lastRelease, 'meta'));
      const journal = JSON.parse(readFileSync(path.join(tollgateMigrations.folder, 'meta', '_journal.json'), 'utf8'));
      writeFileSync(path.join(lastRelease, 'meta', '_journal.json'), JSON.stringify({ ...journal, entries: journal.entries.slice(0, 1) }));
      await handle.migrate({ ...tollgateMigrations, folder: lastRelease });
      const secret = generateKey('tg');
      await handle.db.execute(sql`insert into tollgate.api_keys (name, start, hash, scopes, budget_points, budget_duration, limits)
        values ('old partner', ${displayStart(secret, 'tg')}, ${hashKey(secret)}, ${'{read}'}::text[], 3, 3600, ${JSON.stringify([{ coordinate: 'Query.station', limit: 2, duration: 3600 }])}::jsonb)`);

      const t = await startTestServer({ database: { ...handle, queries: [], dispose: async () => {} } });
      try {
        // the field limit (2) and the budget (3) hold as before the upgrade
        const answers = [];
        for (let i = 0; i < 4; i++) answers.push(await t.gql('{ station(id: "LHR") { name } }', {}, secret));
        expect(answers.map((a) => a.status)).toEqual([200, 200, 200, 429]);
        expect(answers.map((a) => a.body.data?.station?.name ?? null)).toEqual(['London Heathrow', 'London Heathrow', null, null]);
        // (its budget is spent: an admin looks it up)
        const keys = (await t.gql('{ apiKeys { edges { node { id name consumer { id } } } } }', {})).body.data.apiKeys.edges.map((e: { node: unknown }) => e.node);
        const id = keys.find((k: { name: string }) => k.name === 'old partner');
        expect(id.consumer).toBeNull();
        const consumer = (await t.gql('mutation { createConsumer(input: { name: "Old partner Ltd" }) { id } }', {})).body.data.createConsumer;
        const moved = await t.gql('mutation($id: ID!, $c: ID!) { updateApiKey(id: $id, input: { consumerId: $c }) { consumer { id } budget { points } } }', { id: id.id, c: consumer.id });
        expect(moved.body.data.updateApiKey).toEqual({ consumer: { id: consumer.id }, budget: { points: 3 } });
      } finally {
        await t.close();
      }
    } finally {
      rmSync(lastRelease, { recursive: true, force: true });
      await handle.close();
      await scratch?.drop();
    }
  });
});
