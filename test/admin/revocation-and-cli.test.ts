import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { runKeysCli } from '../../src/cli/keys';
import { openDatabase } from '../../src/db/client';
import { flushTestRedis, openTestDatabase, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { createScratchDatabase, describeWithRedis, hasPostgres, testRedisUrl } from '../support/services';

const ME = '{ me { id } }';

describeWithRedis('revocation reaches every instance through Redis', () => {
  let db: TestDatabase;
  let a: TestServer;
  let b: TestServer;

  beforeAll(async () => {
    await flushTestRedis();
    db = await openTestDatabase(hasPostgres() ? 'postgres' : 'pglite');
    // A long cache TTL: only the pub/sub message can make instance B forget the key in time.
    const env = { KEY_CACHE_TTL_SECONDS: '600' };
    a = await startTestServer({ database: db, store: 'redis', env });
    b = await startTestServer({ database: db, store: 'redis', env });
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await db?.dispose();
  });

  it('a key revoked on instance A gets 401 on instance B within 1 second', async () => {
    const key = await a.createKey();
    expect((await b.gql(ME, {}, key.secret)).status).toBe(200); // B has it cached
    await a.gql('mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: key.id });
    const deadline = Date.now() + 1000;
    let status = 200;
    while (Date.now() < deadline && status !== 401) {
      status = (await b.gql(ME, {}, key.secret)).status;
      if (status !== 401) await new Promise((r) => setTimeout(r, 25));
    }
    expect(status).toBe(401);
  });
});

describe('keys CLI', () => {
  let env: NodeJS.ProcessEnv;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    if (hasPostgres()) {
      const scratch = await createScratchDatabase();
      env = { DATABASE_URL: scratch.url, REDIS_URL: process.env.TOLLGATE_TEST_REDIS === '1' ? testRedisUrl() : undefined };
      cleanup = scratch.drop;
    } else {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-cli-'));
      env = { DATA_DIR: dir };
      cleanup = async () => rmSync(dir, { recursive: true, force: true });
    }
  });
  afterAll(() => cleanup());

  const run = async (...argv: string[]) => {
    const lines: string[] = [];
    const code = await runKeysCli(argv, (l) => lines.push(l), env);
    return { code, out: lines.join('\n') };
  };

  it('creates, lists, rotates and revokes keys in the same database the server uses', async () => {
    const created = await run('create', '--name', 'ci', '--scopes', 'admin,read', '--expires', '2099-01-01');
    expect(created.code).toBe(0);
    const secret = /secret: (tg_\w+)/.exec(created.out)![1];
    const id = /id: +([0-9a-f-]{36})/.exec(created.out)![1];

    const listed = await run('list');
    expect(listed.out).toContain(id);
    expect(listed.out).toContain(secret.slice(0, 7));
    expect(listed.out).not.toContain(secret);

    if (env.DATABASE_URL) {
      // a server on the same database accepts the CLI's key
      const handle = await openDatabase({ url: env.DATABASE_URL, dataDir: 'unused' });
      const server = await startTestServer({ database: { ...handle, queries: [], dispose: handle.close } });
      expect((await server.gql(ME, {}, secret)).status).toBe(200);
      await server.close();
      await handle.close();
    }
    const rotated = await run('rotate', id, '--grace', '0');
    expect(rotated).toMatchObject({ code: 0, out: expect.stringMatching(/secret:/) });
    const newSecret = /secret: (tg_\w+)/.exec(rotated.out)![1];
    expect(newSecret).not.toBe(secret);

    const second = await run('create', '--name', 'other admin', '--scopes', 'admin');
    expect(second.code).toBe(0);
    const revoked = await run('revoke', id);
    expect(revoked).toMatchObject({ code: 0, out: expect.stringMatching(/^revoked /) });
    expect((await run('list')).out).not.toContain(id);
    expect((await run('list', '--all')).out).toMatch(new RegExp(`${id}.*revoked`));
  });

  it('explains its mistakes', async () => {
    expect((await run('create')).out).toMatch(/--name is required/);
    expect((await run('create', '--name', 'x', '--scopes', 'root')).out).toMatch(/Unknown scope "root"/);
    expect((await run('create', '--name', 'x', '--expires', 'someday')).out).toMatch(/not a date/);
    expect((await run('revoke', 'nope')).code).toBe(1);
    expect((await run('frobnicate')).code).toBe(2);
  });
});
