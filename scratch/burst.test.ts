import { openTestDatabase, startTestServer } from '../test/support/harness';
it('x', async () => {
  const db = await openTestDatabase('pglite');
  const t = await startTestServer({ database: db, store: 'memory' });
  const key = await t.createKey({ scopes: ['read'] });
  const res = await t.gql('{ stations(first: 50) { edges { node { id } } } }', {}, key.secret);
  console.log(res.status, JSON.stringify(res.body.extensions), res.headers.get('ratelimit-policy'), JSON.stringify(t.config.budgets));
  await t.close(); await db.dispose();
});
