import { eq, sql } from 'drizzle-orm';
import { apiKeys, auditEvents } from '../../src/db/schema';
import { generateKey } from '../../src/keys/format';
import { openTestDatabase, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { databaseBackends } from '../support/services';

const CREATE = `mutation Create($input: CreateApiKeyInput!) {
  createApiKey(input: $input) { secret apiKey { id name start scopes expiresAt limits { coordinate limit duration } budget { points duration } } }
}`;
const UPDATE = 'mutation($id: ID!, $input: UpdateApiKeyInput!) { updateApiKey(id: $id, input: $input) { id name scopes expiresAt limits { coordinate limit } } }';
const REVOKE = 'mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }';
const ROTATE = 'mutation($id: ID!, $grace: Int) { rotateApiKey(id: $id, gracePeriodSeconds: $grace) { secret apiKey { id start previousSecretValidUntil } } }';
const ME = '{ me { id name scopes } }';

describe.each(databaseBackends())('key administration on %s', (backend) => {
  let db: TestDatabase;
  let t: TestServer;
  let skew = 0; // how far the server's clock runs ahead, so grace periods need no sleeping

  beforeAll(async () => {
    db = await openTestDatabase(backend);
    t = await startTestServer({ database: db, now: () => Date.now() + skew });
  });
  afterEach(() => {
    skew = 0;
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
  });

  const counts = async () => ({
    keys: (await db.db.select({ n: sql<number>`count(*)::int` }).from(apiKeys))[0].n,
    revoked: (await db.db.select({ n: sql<number>`count(*)::int` }).from(apiKeys).where(sql`revoked_at is not null`))[0].n,
    audit: (await db.db.select({ n: sql<number>`count(*)::int` }).from(auditEvents))[0].n,
  });

  describe('security matrix: every admin field refuses every bad caller and changes nothing', () => {
    // The target is a real, active key: a bypassed check would change it (the positive control
    // at the end of each case shows that an admin's identical call does).
    let victim: { id: string; secret: string };
    const fields: [string, string, () => Record<string, unknown>][] = [
      ['apiKey', 'query($id: ID!) { apiKey(id: $id) { id } }', () => ({ id: victim.id })],
      ['apiKeys', '{ apiKeys { totalCount } }', () => ({})],
      ['auditEvents', '{ auditEvents { totalCount } }', () => ({})],
      ['usageTotals', '{ usageTotals(from: "2026-03-01T00:00:00Z", to: "2026-03-02T00:00:00Z") { operations } }', () => ({})],
      ['createApiKey', CREATE, () => ({ input: { name: 'intruder', scopes: ['admin'] } })],
      ['updateApiKey', UPDATE, () => ({ id: victim.id, input: { scopes: ['admin'] } })],
      ['revokeApiKey', REVOKE, () => ({ id: victim.id })],
      ['rotateApiKey', ROTATE, () => ({ id: victim.id })],
    ];
    let callers: [string, () => Promise<string | null>, number, string][];
    // Everything but last_used_at, which the batched flush may write at any moment (the victim's key is used below).
    const victimRow = async () => {
      const { lastUsedAt: _used, ...row } = (await db.db.select().from(apiKeys).where(eq(apiKeys.id, victim.id)))[0];
      return JSON.stringify(row);
    };

    beforeEach(async () => {
      victim = await t.createKey({ name: 'victim', scopes: ['read'] });
    });

    beforeAll(() => {
      callers = [
        ['no key', async () => null, 401, 'UNAUTHENTICATED'],
        ['a malformed key', async () => 'tg_not-a-key', 401, 'UNAUTHENTICATED'],
        ['an unknown key', async () => generateKey('tg'), 401, 'UNAUTHENTICATED'],
        ['a revoked admin key', async () => {
          const k = await t.createKey({ scopes: ['admin'] });
          await t.server.keys.revoke(k.id, null);
          return k.secret;
        }, 401, 'UNAUTHENTICATED'],
        ['an expired admin key', async () => {
          const k = await t.createKey({ scopes: ['admin'] });
          await db.db.update(apiKeys).set({ expiresAt: new Date(Date.now() - 1000) }).where(eq(apiKeys.id, k.id));
          return k.secret;
        }, 401, 'UNAUTHENTICATED'],
        ['a non-admin key', async () => (await t.createKey({ scopes: ['read', 'write'] })).secret, 403, 'FORBIDDEN'],
      ];
    });

    it.each(fields)('%s', async (field, query, variables) => {
      for (const [, makeCaller, status, code] of callers) {
        const secret = await makeCaller();
        const before = { ...(await counts()), victim: await victimRow() };
        const res = await t.gql(query, variables(), secret);
        expect({ status: res.status, code: res.body.errors?.[0]?.extensions?.code }).toEqual({ status, code });
        expect({ ...(await counts()), victim: await victimRow() }).toEqual(before);
        expect((await t.gql(ME, {}, victim.secret)).status).toBe(200); // the victim's key still works
      }
      // Positive control: the admin key's identical call is admitted, and a write really writes.
      const before = { ...(await counts()), victim: await victimRow() };
      const admitted = await t.gql(query, variables());
      expect(admitted.body.errors).toBeUndefined();
      if (/^(create|update|revoke|rotate)/.test(field)) expect({ ...(await counts()), victim: await victimRow() }).not.toEqual(before);
    });
  });

  it('creates a key that works at once, shows its secret only at creation, and audits it', async () => {
    const res = await t.gql(CREATE, {
      input: { name: 'partner', scopes: ['read'], limits: [{ coordinate: 'Query.forecast', limit: 10, duration: 60 }], budget: { points: 500, duration: 3600 } },
    });
    const { secret, apiKey } = res.body.data.createApiKey;
    expect(secret).toMatch(/^tg_/);
    expect(apiKey).toMatchObject({ name: 'partner', scopes: ['read'], start: secret.slice(0, 7), budget: { points: 500, duration: 3600 } });
    expect((await t.gql(ME, {}, secret)).body.data.me).toMatchObject({ id: apiKey.id, scopes: ['read'] });
    const fetched = await t.gql('query($id: ID!) { apiKey(id: $id) { id name } }', { id: apiKey.id });
    expect(JSON.stringify(fetched.body)).not.toContain(secret);
    const [event] = await db.db.select().from(auditEvents).where(eq(auditEvents.targetKeyId, apiKey.id));
    expect(event).toMatchObject({ action: 'key.created', actorKeyId: expect.any(String) });
    expect(JSON.stringify(event.details)).not.toContain(secret.slice(7));
  });

  it('rotates: same id, new secret; the old one works during the grace period, then gets 401', async () => {
    const key = await t.createKey({ scopes: ['read'] });
    expect((await t.gql(ME, {}, key.secret)).status).toBe(200); // cached under the old secret
    const rotated = (await t.gql(ROTATE, { id: key.id, grace: 3600 })).body.data.rotateApiKey;
    expect(rotated.apiKey.id).toBe(key.id);
    expect(rotated.secret).not.toBe(key.secret);
    expect((await t.gql(ME, {}, rotated.secret)).body.data.me.id).toBe(key.id);
    expect((await t.gql(ME, {}, key.secret)).status).toBe(200); // still in grace
    skew = 3_599_000;
    expect((await t.gql(ME, {}, key.secret)).status).toBe(200); // a second before the end
    skew = 3_601_000;
    expect((await t.gql(ME, {}, key.secret)).status).toBe(401);
    expect((await t.gql(ME, {}, rotated.secret)).status).toBe(200);

    const now = (await t.gql(ROTATE, { id: key.id, grace: 0 })).body.data.rotateApiKey;
    expect((await t.gql(ME, {}, rotated.secret)).status).toBe(401); // grace 0: stops at once
    expect((await t.gql(ME, {}, now.secret)).status).toBe(200);
    const events = await db.db.select().from(auditEvents).where(eq(auditEvents.targetKeyId, key.id));
    expect(events.map((e) => e.action).sort()).toEqual(['key.created', 'key.rotated', 'key.rotated']);
    for (const secret of [key.secret, rotated.secret, now.secret]) expect(JSON.stringify(events)).not.toContain(secret.slice(7));
  });

  it('keeps budgets across a rotation (they belong to the key id)', async () => {
    const key = await t.createKey({ scopes: ['read'], limits: [{ coordinate: 'Query.station', limit: 2, duration: 60 }] });
    const q = '{ station(id: "LHR") { id } }';
    await t.gql(q, {}, key.secret);
    await t.gql(q, {}, key.secret);
    const rotated = (await t.gql(ROTATE, { id: key.id, grace: 0 })).body.data.rotateApiKey;
    const res = await t.gql(q, {}, rotated.secret);
    expect(res.body.errors[0].extensions.code).toBe('RATE_LIMITED');
  });

  it('revokes at once on this instance, idempotently, with one audit row', async () => {
    const key = await t.createKey();
    expect((await t.gql(ME, {}, key.secret)).status).toBe(200);
    const first = await t.gql(REVOKE, { id: key.id });
    expect(first.body.data.revokeApiKey.revokedAt).toBeTruthy();
    expect((await t.gql(ME, {}, key.secret)).status).toBe(401);
    const second = await t.gql(REVOKE, { id: key.id });
    expect(second.body.data.revokeApiKey.revokedAt).toBe(first.body.data.revokeApiKey.revokedAt);
    const rows = await db.db.select().from(auditEvents).where(eq(auditEvents.targetKeyId, key.id));
    expect(rows.map((r) => r.action).sort()).toEqual(['key.created', 'key.revoked']);
  });

  it('updates scopes, name, overrides; the change applies without a restart and is audited as a diff', async () => {
    const key = await t.createKey({ scopes: ['read'] });
    const res = await t.gql(UPDATE, { id: key.id, input: { name: 'renamed', scopes: ['read', 'write'], limits: [{ coordinate: 'Query.station', limit: 1, duration: 60 }] } });
    expect(res.body.data.updateApiKey).toMatchObject({ name: 'renamed', scopes: ['read', 'write'], limits: [{ coordinate: 'Query.station', limit: 1 }] });
    expect((await t.gql(ME, {}, key.secret)).body.data.me.scopes).toEqual(['read', 'write']);
    const q = '{ station(id: "LHR") { id } }';
    expect((await t.gql(q, {}, key.secret)).body.errors).toBeUndefined();
    expect((await t.gql(q, {}, key.secret)).body.errors[0].extensions.code).toBe('RATE_LIMITED');
    const [event] = await db.db.select().from(auditEvents).where(sql`${auditEvents.targetKeyId} = ${key.id} and action = 'key.updated'`);
    expect(event.details).toMatchObject({ before: { name: 'test key', scopes: ['read'] }, after: { name: 'renamed', scopes: ['read', 'write'] } });
    expect(Object.keys((event.details as { after: object }).after).sort()).toEqual(['limits', 'name', 'scopes']);
  });

  it.each([
    ['an empty name', { name: '' }, 'name'],
    ['a 101-character name', { name: 'x'.repeat(101) }, 'name'],
    ['an unknown scope', { name: 'k', scopes: ['root'] }, 'scopes'],
    ['an expiry in the past', { name: 'k', expiresAt: '2020-01-01T00:00:00Z' }, 'expiresAt'],
    ['an override of an unlimited field', { name: 'k', limits: [{ coordinate: 'Query.me', limit: 1, duration: 1 }] }, 'limits[0].coordinate'],
    ['a zero limit', { name: 'k', limits: [{ coordinate: 'Query.forecast', limit: 0, duration: 1 }] }, 'limits[0].limit'],
    ['a negative budget', { name: 'k', budget: { points: -5, duration: 60 } }, 'budget.points'],
  ])('refuses %s with BAD_USER_INPUT naming the field, creating nothing', async (_name, input, field) => {
    const before = await counts();
    const res = await t.gql(CREATE, { input });
    expect(res.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field });
    expect(await counts()).toEqual(before);
  });

  it('pages through keys and audit events with cursors', async () => {
    const made = [];
    for (let i = 0; i < 12; i++) made.push(await t.createKey({ name: `page-${i}` }));
    await t.server.keys.revoke(made[0].id, null); // so includeRevoked has one more to show, whatever ran before
    const q = 'query($after: String) { apiKeys(first: 5, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { id } } } }';
    const seen: string[] = [];
    let after: string | null = null;
    let total = 0;
    do {
      const page: any = (await t.gql(q, { after })).body.data.apiKeys;
      total = page.totalCount;
      seen.push(...page.edges.map((e: any) => e.node.id));
      after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
    } while (after);
    expect(seen.length).toBe(total);
    expect(new Set(seen).size).toBe(total);
    const withRevoked = (await t.gql('{ apiKeys(includeRevoked: true) { totalCount } }')).body.data.apiKeys.totalCount;
    expect(withRevoked).toBeGreaterThanOrEqual(total + 1);
    expect(seen).not.toContain(made[0].id);
    const audit = (await t.gql('{ auditEvents(first: 3) { totalCount pageInfo { hasNextPage } edges { node { action at } } } }')).body.data.auditEvents;
    expect(audit.edges).toHaveLength(3);
    expect(audit.pageInfo.hasNextPage).toBe(true);
    for (const bad of [{ first: 0 }, { first: 101 }]) {
      const res = await t.gql('query($first: Int) { apiKeys(first: $first) { totalCount } }', bad);
      expect(res.body.errors[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', field: 'first' });
    }
  });

  it('reads usage without spending it', async () => {
    const key = await t.createKey({ scopes: ['read'] });
    const usage = async () => {
      const res = await t.gql('query($id: ID!) { apiKey(id: $id) { usage { coordinate limit duration remaining } } }', { id: key.id });
      return res.body.data.apiKey.usage.find((u: { coordinate: string }) => u.coordinate === 'Query.station');
    };
    expect(await usage()).toEqual({ coordinate: 'Query.station', limit: 300, duration: 60, remaining: 300 });
    expect((await usage()).remaining).toBe(300);
    await t.gql('{ station(id: "LHR") { id } }', {}, key.secret);
    expect((await usage()).remaining).toBe(299);
  });

  it('refuses to revoke, expire or demote the last active admin key', async () => {
    const fresh = await openTestDatabase('pglite');
    const solo = await startTestServer({ database: fresh });
    try {
      const me = (await solo.gql(ME)).body.data.me;
      for (const [query, variables] of [
        [REVOKE, { id: me.id }],
        [UPDATE, { id: me.id, input: { scopes: ['read'] } }],
        [UPDATE, { id: me.id, input: { expiresAt: new Date(Date.now() + 86_400_000).toISOString() } }],
      ] as const) {
        const res = await solo.gql(query, variables);
        expect(res.body.errors[0].extensions).toMatchObject({ code: 'FORBIDDEN', reason: 'LAST_ADMIN_KEY' });
      }
      expect((await solo.gql(ME)).status).toBe(200);
      const second = (await solo.gql(CREATE, { input: { name: 'second admin', scopes: ['admin'] } })).body.data.createApiKey;
      expect((await solo.gql(REVOKE, { id: me.id })).body.errors).toBeUndefined();
      const demote = await solo.gql(UPDATE, { id: second.apiKey.id, input: { scopes: ['read'] } }, second.secret);
      expect(demote.body.errors[0].extensions.reason).toBe('LAST_ADMIN_KEY');
      // rotating or renaming the last admin key is fine, even when it already had an expiry
      const third = (await solo.gql(CREATE, { input: { name: 'expiring admin', scopes: ['admin'], expiresAt: '2099-01-01T00:00:00Z' } }, second.secret)).body.data.createApiKey;
      expect((await solo.gql(REVOKE, { id: second.apiKey.id }, third.secret)).body.errors).toBeUndefined();
      expect((await solo.gql(ROTATE, { id: third.apiKey.id, grace: 0 }, third.secret)).body.errors).toBeUndefined();
    } finally {
      await solo.close();
      await fresh.dispose();
    }
  });
});
