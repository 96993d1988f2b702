import { sql } from 'drizzle-orm';
import { apiKeys } from '../../src/db/schema';
import { tollgateMigrations } from '../../src/db/migrate';
import { KeyService } from '../../src/keys/service';
import { openTestDatabase, type TestDatabase } from '../support/harness';
import { databaseBackends } from '../support/services';

describe.each(databaseBackends())('first-start admin key on %s', (backend) => {
  let db: TestDatabase;
  beforeAll(async () => {
    db = await openTestDatabase(backend);
    await db.migrate(tollgateMigrations);
  });
  afterAll(() => db?.dispose());

  it('is created once, even when several instances start together on an empty database', async () => {
    const services = [1, 2, 3, 4].map(() => new KeyService({ db: db.db, prefix: 'tg', scopes: ['admin', 'read'], limitedCoordinates: new Set() }));
    const secrets = await Promise.all(services.map(async (s) => (await s.createFirstAdmin(['admin', 'read']))?.secret));
    expect(secrets.filter(Boolean)).toHaveLength(1);
    const rows = await db.db.select().from(apiKeys);
    expect(rows).toHaveLength(1);
    expect(rows[0]).toMatchObject({ name: 'bootstrap admin', scopes: ['admin', 'read'] });
    // and never again
    expect(await services[0].createFirstAdmin(['admin'])).toBeNull();
    expect((await db.db.select({ n: sql<number>`count(*)::int` }).from(apiKeys))[0].n).toBe(1);
  });
});
