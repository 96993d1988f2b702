import { mkdtempSync, rmSync } from 'node:fs';
import { Readable } from 'node:stream';
import os from 'node:os';
import path from 'node:path';
import { runKeysCli } from '../../src/cli/keys';
import { openDatabase } from '../../src/db/client';
import { flushTestRedis, openTestDatabase, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { createScratchDatabase, databaseBackends, describeWithRedis, hasPostgres, hasRedis, testRedisUrl } from '../support/services';
import { until } from '../support/wait';

// Each CLI call without --url opens the embedded database itself (as an operator's would): a
// dozen calls in one test took over 30 s on PGlite with two runs at once on two cores.
jest.setTimeout(120_000);

const ME = '{ me { id } }';
const STATION = '{ station(id: "LHR") { name } }'; // 1 point

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

  it('a key revoked on instance A gets 401 on instance B long before its cache would have let go (pub/sub)', async () => {
    const key = await a.createKey();
    expect((await b.gql(ME, {}, key.secret)).status).toBe(200); // B has it cached for 10 minutes
    await a.gql('mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: key.id });
    const revokedAt = Date.now();
    // The order of events is the assertion: cached on B, revoked on A, refused on B — within a
    // bound far inside B's 600 s cache TTL, so only the pub/sub message can have told B. How fast
    // (the README's "within a second") is reported, not asserted: a loaded machine is no bug.
    await until(async () => (await b.gql(ME, {}, key.secret)).status === 401, 15_000);
    console.info(`revocation reached the second instance after ${Date.now() - revokedAt} ms`);
  });

  it('a budget changed on instance A applies on instance B at once, counting on from what was spent', async () => {
    const key = await a.createKey({ budget: { points: 3, duration: 600 } });
    for (let i = 0; i < 3; i++) expect((await b.gql(STATION, {}, key.secret)).status).toBe(200);
    expect((await b.gql(STATION, {}, key.secret)).status).toBe(429); // B has the key cached for 10 minutes
    await a.gql('mutation($id: ID!, $input: UpdateApiKeyInput!) { updateApiKey(id: $id, input: $input) { id } }', { id: key.id, input: { budget: { points: 5, duration: 600 } } });
    // only pub/sub can tell B; the order of events is the assertion, not a duration
    await until(async () => (await b.gql('{ rateLimit { limit } }', {}, key.secret)).body.data.rateLimit.limit === 5, 5000);
    const answers = [];
    for (let i = 0; i < 3; i++) answers.push((await b.gql(STATION, {}, key.secret)).status);
    expect(answers).toEqual([200, 200, 429]); // 2 more, not 5
  });
});

describe.each(databaseBackends())('keys CLI on %s', (backend) => {
  let env: NodeJS.ProcessEnv;
  let cleanup: () => Promise<void>;

  beforeAll(async () => {
    if (backend === 'postgres') {
      const scratch = await createScratchDatabase();
      env = { DATABASE_URL: scratch.url, REDIS_URL: hasRedis() ? testRedisUrl() : undefined };
      cleanup = scratch.drop;
    } else {
      const dir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-cli-'));
      env = { DATA_DIR: path.join(dir, 'db') };
      cleanup = async () => rmSync(dir, { recursive: true, force: true });
    }
  });
  afterAll(() => cleanup());

  /** The CLI with extra environment variables and, with `stdin`, that text on its standard input. */
  const runWith = async (options: { env?: Record<string, string>; stdin?: string }, ...argv: string[]) => {
    const lines: string[] = [];
    const code = await runKeysCli(argv, (l) => lines.push(l), { ...env, ...options.env }, Readable.from(options.stdin === undefined ? [] : [options.stdin]));
    return { code, out: lines.join('\n') };
  };
  const run = (...argv: string[]) => runWith({}, ...argv);
  /** Through a running server, its admin key in TOLLGATE_ADMIN_KEY (never an argument). */
  const remoteTo = (server: TestServer) => (...argv: string[]) => runWith({ env: { TOLLGATE_ADMIN_KEY: server.adminKey } }, '--url', server.url, ...argv);
  /** What a command printed with --json, parsed (it must have succeeded). */
  const json = async (...argv: string[]) => {
    const result = await run(...argv, '--json');
    expect({ argv, code: result.code }).toEqual({ argv, code: 0 });
    return JSON.parse(result.out);
  };

  /** A server on the CLI's own database (opened after the CLI has closed it: PGlite is one process). */
  const withServerOnSameDatabase = async (fn: (server: TestServer) => Promise<void>) => {
    const handle = await openDatabase({ url: env.DATABASE_URL, dataDir: env.DATA_DIR ?? 'unused' });
    const server = await startTestServer({ database: { ...handle, queries: [], dispose: handle.close } });
    try {
      await fn(server);
    } finally {
      await server.close();
      await handle.close();
    }
  };

  it('creates, lists, rotates and revokes keys in the same database the server uses', async () => {
    const created = await run('create', '--name', 'ci', '--scopes', 'admin,read', '--expires', '2099-01-01');
    expect(created.code).toBe(0);
    const secret = /secret: +(tg_\w+)/.exec(created.out)![1];
    const id = /id: +([0-9a-f-]{36})/.exec(created.out)![1];

    const listed = await run('list');
    expect(listed.out).toContain(id);
    expect(listed.out).toContain(secret.slice(0, 7));
    expect(listed.out).not.toContain(secret);
    await withServerOnSameDatabase(async (server) => expect((await server.gql(ME, {}, secret)).status).toBe(200));

    const rotated = await run('rotate', id, '--grace', '0');
    expect(rotated).toMatchObject({ code: 0, out: expect.stringMatching(/secret:/) });
    const newSecret = /secret: +(tg_\w+)/.exec(rotated.out)![1];
    expect(newSecret).not.toBe(secret);
    await withServerOnSameDatabase(async (server) => {
      expect((await server.gql(ME, {}, newSecret)).status).toBe(200);
      expect((await server.gql(ME, {}, secret)).status).toBe(401); // no grace: the old secret is dead
    });

    const second = await run('create', '--name', 'other admin', '--scopes', 'admin');
    expect(second.code).toBe(0);
    const revoked = await run('revoke', id);
    expect(revoked).toMatchObject({ code: 0, out: expect.stringMatching(/^revoked /) });
    expect((await run('list')).out).not.toContain(id);
    expect((await run('list', '--all')).out).toMatch(new RegExp(`${id}.*revoked`));
    await withServerOnSameDatabase(async (server) => expect((await server.gql(ME, {}, newSecret)).status).toBe(401));
  });

  it('creates a consumer with its first key in one command, and lists consumers and plans — directly and through a server', async () => {
    const made = await run('create-consumer', '--name', 'Acme', '--external-id', `cus_${Date.now()}`);
    expect(made.code).toBe(0);
    const consumerId = /consumer: ([0-9a-f-]{36})/.exec(made.out)![1];
    const secret = /secret: +(tg_\w+)/.exec(made.out)![1];
    expect((await run('consumers')).out).toMatch(new RegExp(`${consumerId} +Acme +cus_\\d+ +\\(no plan\\)`));
    await withServerOnSameDatabase(async (server) => {
      // the key spends its consumer's budget
      const me = await server.gql('{ me { consumer { id name } } }', {}, secret);
      expect(me.body.data.me.consumer).toEqual({ id: consumerId, name: 'Acme' });
      await server.gql('mutation { createPlan(input: { name: "Team", budgets: [{ points: 500, duration: 60 }], quotas: [{ points: 9000, period: DAY }] }) { id } }', {});
      const remote = remoteTo(server);
      expect((await remote('plans')).out).toMatch(/Team +500\/60s,9000\/day/);
      expect((await remote('consumers')).out).toMatch(new RegExp(`${consumerId} +Acme`));
      const second = await remote('create', '--name', 'staging', '--scopes', 'read', '--consumer', consumerId);
      expect(second.code).toBe(0);
      const unknown = await remote('create', '--name', 'x', '--consumer', '00000000-0000-4000-8000-000000000009');
      expect(unknown).toMatchObject({ code: 1, out: expect.stringMatching(/No consumer with id/) });
    });
  });

  it('works through a running server\'s admin API with --url, the admin key from TOLLGATE_ADMIN_KEY or standard input', async () => {
    await withServerOnSameDatabase(async (server) => {
      const remote = remoteTo(server);
      const created = await remote('create', '--name', 'remote', '--scopes', 'read');
      expect(created.code).toBe(0);
      const secret = /secret: +(tg_\w+)/.exec(created.out)![1];
      const id = /id: +([0-9a-f-]{36})/.exec(created.out)![1];
      expect((await server.gql(ME, {}, secret)).status).toBe(200);
      expect((await remote('list')).out).toMatch(new RegExp(`${id}.*active.*read.*remote`));
      const rotated = await remote('rotate', id, '--grace', '0');
      const next = /secret: +(tg_\w+)/.exec(rotated.out)![1];
      expect((await server.gql(ME, {}, next)).status).toBe(200);
      expect((await server.gql(ME, {}, secret)).status).toBe(401);
      expect((await remote('revoke', id)).code).toBe(0);
      expect((await server.gql(ME, {}, next)).status).toBe(401);
      // A wrong admin key is the server's 401, reported as such.
      const denied = await runWith({ env: { TOLLGATE_ADMIN_KEY: 'tg_wrong' } }, '--url', server.url, 'list');
      expect(denied).toEqual({ code: 1, out: expect.stringMatching(/^error: The API key is not valid\. \(UNAUTHENTICATED\)/) });
      // --key-stdin: the first line of standard input (a pipe from a file or a password manager).
      const piped = await runWith({ stdin: `${server.adminKey}\n` }, '--url', server.url, '--key-stdin', 'list');
      expect(piped).toEqual(await remote('list'));
      expect(piped.code).toBe(0);
      expect(await runWith({ stdin: '' }, '--url', server.url, '--key-stdin', 'list')).toEqual({ code: 1, out: 'error: --key-stdin: standard input held no key' });
      // --key is refused before anything is sent, saying why; the key given is used nowhere.
      const onCommandLine = await run('--url', server.url, '--key', server.adminKey, 'list');
      expect(onCommandLine.code).toBe(2);
      expect(onCommandLine.out).toMatch(/^error: --key is not accepted: a key on the command line shows in `ps` and in shell history\. Set TOLLGATE_ADMIN_KEY, or pipe it in with --key-stdin/);
    });
  });

  it('exports a key\'s and a consumer\'s usage history as CSV, directly and through a server', async () => {
    const made = await run('create-consumer', '--name', 'Charted');
    const consumerId = /consumer: ([0-9a-f-]{36})/.exec(made.out)![1];
    const keyId = /key id: +([0-9a-f-]{36})/.exec(made.out)![1];
    const secret = /secret: +(tg_\w+)/.exec(made.out)![1];
    // Served by a server that then stops: its last counts are written on the way out.
    await withServerOnSameDatabase(async (server) => {
      for (let i = 0; i < 3; i++) expect((await server.gql(STATION, {}, secret)).status).toBe(200);
    });
    const from = new Date(Date.now() - 3_600_000).toISOString();
    const to = new Date(Date.now() + 60_000).toISOString();
    const hour = new Date(Math.floor(Date.now() / 3_600_000) * 3_600_000).toISOString();
    const minutes = (csv: string) => csv.split('\n').slice(1).reduce((n, line) => n + Number(line.split(',')[1]), 0);

    const local = await run('usage', keyId, '--from', from, '--to', to, '--granularity', 'minute');
    expect(local.code).toBe(0);
    expect(local.out.split('\n')[0]).toBe('start,operations,refused,points,refunded,errors');
    expect(minutes(local.out)).toBe(3);
    const byConsumer = await run('usage', '--consumer', consumerId, '--from', from, '--to', to);
    // Three operations in the hour, a point each, none refused. (The clock may have crossed an hour.)
    expect(byConsumer.out).toMatch(new RegExp(`^start,operations,refused,points,refunded,errors\n(${hour}|.*\n${hour}),3,0,3,0,0$`));
    const fields = await run('usage', keyId, '--from', from, '--to', to, '--fields');
    expect(fields.out).toMatch(/^start,coordinate,calls,points,refused\n.*,Query\.station,3,3,0$/);
    expect(await run('usage', keyId, '--from', from, '--to', to, '--refusals')).toEqual({ code: 0, out: 'start,gate,coordinate,count' });
    const buckets = await json('usage', keyId, '--from', from, '--to', to);
    expect(buckets.reduce((n: number, b: { operations: number }) => n + b.operations, 0)).toBe(3);
    expect(buckets.flatMap((b: { fields: { coordinate: string }[] }) => b.fields.map((f) => f.coordinate))).toContain('Query.station');
    // Who spent the most, by key and by consumer (other tests' keys may be in the list too).
    expect((await run('top', '--from', from, '--to', to, '--by', 'key', '--first', '100')).out).toMatch(new RegExp(`^id,name,points,operations,refused\n(.*\n)*${keyId},Charted key,3,3,0$`, 'm'));
    expect((await json('top', '--from', from, '--to', to))).toContainEqual({ consumer: { id: consumerId, name: 'Charted', externalId: null }, key: null, points: 3, operations: 3, refused: 0 });
    const unknownKey = '00000000-0000-4000-8000-000000000009';
    expect(await run('usage', unknownKey, '--from', from, '--to', to)).toEqual({ code: 1, out: `error: No API key with id "${unknownKey}".` });
    expect(await run('usage', '--consumer', 'acme', '--from', from, '--to', to)).toEqual({ code: 1, out: 'error: No consumer with id "acme".' });
    await withServerOnSameDatabase(async (server) => {
      const remote = await remoteTo(server)('usage', keyId, '--from', from, '--to', to, '--granularity', 'minute');
      expect(remote).toEqual(local);
      expect(await remoteTo(server)('usage', unknownKey, '--from', from, '--to', to)).toEqual({ code: 1, out: `error: No API key with id "${unknownKey}".` });
    });

    expect(await run('usage', keyId, '--from', to, '--to', from)).toEqual({ code: 1, out: 'error: "from" must not be after "to".' });
    expect(await run('usage', keyId, '--from', 'last week', '--to', to)).toEqual({ code: 1, out: 'error: --from "last week" is not a date (e.g. 2026-11-01 or 2026-11-01T12:00:00Z)' });
    expect(await run('usage', keyId, '--to', to)).toEqual({ code: 1, out: expect.stringMatching(/^error: usage needs --from and --to dates/) });
    expect(await run('usage', '--from', from, '--to', to)).toEqual({ code: 1, out: 'error: usage needs a key id or --consumer ID (one of them)' });
    expect(await run('usage', keyId, '--from', from, '--to', to, '--granularity', 'week')).toEqual({ code: 1, out: 'error: --granularity "week" must be minute, hour or day' });
  });

  it('updates a key — budget, restrictions, expiry — directly and through a server, and clears with none/never', async () => {
    const created = await run('create', '--name', 'to change', '--scopes', 'read');
    const id = /id: +([0-9a-f-]{36})/.exec(created.out)![1];
    const secret = /secret: +(tg_\w+)/.exec(created.out)![1];
    const changed = await run('update', id, '--budget', '2/3600', '--allowed-ips', '127.0.0.1/32,::1', '--expires', '2099-01-01');
    expect(changed.code).toBe(0);
    expect(changed.out).toMatch(new RegExp(`^updated ${id}\n`));
    for (const line of ['name: +to change', 'scopes: +read', 'budget: +2/3600s', 'ips: +127\\.0\\.0\\.1,::1', 'origins: +any', 'expires: +2099-01-01T00:00:00\\.000Z']) {
      expect(changed.out).toMatch(new RegExp(`^${line}$`, 'm'));
    }
    await withServerOnSameDatabase(async (server) => {
      // From 127.0.0.1: allowed; its budget of 2 holds.
      expect([await server.gql(STATION, {}, secret), await server.gql(STATION, {}, secret), await server.gql(STATION, {}, secret)].map((r) => r.status)).toEqual([200, 200, 429]);
      const remote = await remoteTo(server)('update', id, '--allowed-ips', '10.0.0.0/8', '--expires', 'never', '--budget', 'none');
      expect(remote.code).toBe(0);
      for (const line of ['ips: +10\\.0\\.0\\.0/8', 'expires: +never', 'budget: +\\(server default\\)']) expect(remote.out).toMatch(new RegExp(`^${line}$`, 'm'));
      expect((await server.gql(STATION, {}, secret)).status).toBe(401); // not from 10/8: refused like an unknown key
    });
    expect((await run('update', id, '--allowed-ips', 'none')).out).toMatch(/^ips: +any$/m);
    expect(await run('update', id)).toEqual({ code: 1, out: expect.stringMatching(/^error: update needs something to change/) });
    expect(await run('update', id, '--budget', 'lots')).toEqual({ code: 1, out: 'error: --budget "lots" must be POINTS/SECONDS, e.g. 500/60 (several: 500/60,10000/3600; or none)' });
    expect(await run('update', id, '--allowed-ips', '300.1.1.1/8')).toEqual({ code: 1, out: expect.stringMatching(/^error: .*300\.1\.1\.1\/8/) });
    expect(await run('update', '00000000-0000-4000-8000-000000000009', '--name', 'x')).toEqual({ code: 1, out: 'error: No API key with id "00000000-0000-4000-8000-000000000009".' });
  });

  it('answers --json on every key command: create with a budget and field limits, show, update, list, rotate, revoke, audit — the secret only where one is made', async () => {
    const created = await json('create', '--name', 'scripted', '--scopes', 'read', '--budget', '50/60,1000/3600', '--limits', 'Query.forecast=10/60', '--expires', '2099-01-01');
    expect(created).toEqual({
      secret: expect.stringMatching(/^tg_\w+$/),
      apiKey: expect.objectContaining({
        name: 'scripted',
        status: 'active',
        scopes: ['read'],
        budget: { points: 50, duration: 60 },
        budgets: [{ points: 1000, duration: 3600 }],
        limits: [{ coordinate: 'Query.forecast', limit: 10, duration: 60 }],
        expiresAt: '2099-01-01T00:00:00.000Z',
        consumer: null,
        lastUsedAt: null,
        allowedIps: [],
        allowedOrigins: [],
      }),
    });
    const { id } = created.apiKey;
    expect(await json('show', id)).toEqual(created.apiKey);
    const updated = await json('update', id, '--name', 'renamed', '--limits', 'none', '--budget', '5/60');
    expect(updated).toEqual({ ...created.apiKey, name: 'renamed', limits: [], budget: { points: 5, duration: 60 }, budgets: [] });
    expect((await json('list')).find((k: { id: string }) => k.id === id)).toEqual(updated);
    const rotated = await json('rotate', id, '--grace', '60');
    expect(rotated).toEqual({ secret: expect.stringMatching(/^tg_\w+$/), apiKey: expect.objectContaining({ id, previousSecretValidUntil: expect.any(String) }) });
    expect(rotated.secret).not.toBe(created.secret);
    const revoked = await json('revoke', id);
    expect(revoked).toMatchObject({ id, status: 'revoked', revokedAt: expect.any(String) });
    const events = await json('audit', id);
    expect(events.map((e: { action: string }) => e.action)).toEqual(['key.revoked', 'key.rotated', 'key.updated', 'key.created']);
    expect(events.every((e: { actorKeyId: string | null }) => e.actorKeyId === null)).toBe(true); // the command line
    for (const printed of [updated, revoked, events, await json('show', id), await json('list', '--all')]) {
      expect(JSON.stringify(printed)).not.toContain(created.secret.slice(8));
      expect(JSON.stringify(printed)).not.toContain(rotated.secret.slice(8));
    }
  });

  it('lists keys with status, scopes, budget, expiry, last use, consumer and name', async () => {
    const { consumer } = await json('create-consumer', '--name', 'Columns Inc', '--no-key');
    const key = await json('create', '--name', 'columns', '--scopes', 'read', '--budget', '7/60', '--consumer', consumer.id, '--expires', '2099-01-01T12:30:00Z');
    const idle = await json('create', '--name', 'idle', '--scopes', 'read');
    await json('revoke', idle.apiKey.id);
    // Used once through a server: the last use is written when it stops.
    await withServerOnSameDatabase(async (server) => expect((await server.gql(ME, {}, key.secret)).status).toBe(200));
    const lines = (await run('list', '--all')).out.split('\n');
    const cells = (line: string) => line.split(/ {2,}/);
    expect(cells(lines[0])).toEqual(['ID', 'START', 'STATUS', 'SCOPES', 'BUDGET', 'EXPIRES', 'LAST USED', 'CONSUMER', 'NAME']);
    const row = (id: string) => cells(lines.find((l) => l.startsWith(id))!);
    expect(row(key.apiKey.id)).toEqual([key.apiKey.id, `${key.apiKey.start}…`, 'active', 'read', '7/60s', '2099-01-01 12:30Z', expect.stringMatching(/^20\d\d-\d\d-\d\d \d\d:\d\dZ$/), 'Columns Inc', 'columns']);
    expect(row(idle.apiKey.id)).toEqual([idle.apiKey.id, `${idle.apiKey.start}…`, 'revoked', 'read', '-', 'never', 'never', '-', 'idle']);
    expect((await run('list')).out).not.toContain(idle.apiKey.id);
    const [listed] = (await json('list')).filter((k: { id: string }) => k.id === key.apiKey.id);
    expect(listed).toMatchObject({ status: 'active', lastUsedAt: expect.any(String), consumer: { id: consumer.id, name: 'Columns Inc' }, budget: { points: 7, duration: 60 } });
  });

  it('sets field limits on keys: taken as written without a server (and said so), checked against the schema through one — and they hold', async () => {
    const local = await run('create', '--name', 'limited', '--scopes', 'read', '--limits', 'Query.station=2/3600,Query.forecast=10/60');
    expect(local.code).toBe(0);
    expect(local.out).toMatch(/^limits: +Query\.station=2\/3600s,Query\.forecast=10\/60s$/m);
    expect(local.out).toMatch(/^note: field limits were not checked against your schema/m);
    const secret = /secret: +(tg_\w+)/.exec(local.out)![1];
    const id = /id: +([0-9a-f-]{36})/.exec(local.out)![1];
    await withServerOnSameDatabase(async (server) => {
      const answers = [];
      for (let i = 0; i < 3; i++) answers.push((await server.gql(STATION, {}, secret)).body);
      expect(answers.map((b) => b.errors?.[0]?.extensions?.code ?? 'ok')).toEqual(['ok', 'ok', 'RATE_LIMITED']); // its own 2 an hour, not the schema's 300 a minute
      const remote = remoteTo(server);
      const refused = await remote('update', id, '--limits', 'Query.nope=1/60');
      expect(refused).toEqual({ code: 1, out: expect.stringMatching(/^error: "Query\.nope" carries no @rateLimit; limited fields: .*Query\.forecast/) });
      const changed = await remote('update', id, '--limits', 'Query.forecast=4/60');
      expect(changed.code).toBe(0);
      expect(changed.out).toMatch(/^limits: +Query\.forecast=4\/60s$/m);
      expect(changed.out).not.toMatch(/note:/); // the server checked them
    });
    expect(await run('update', id, '--limits', 'forecast=4')).toEqual({ code: 1, out: 'error: --limits "forecast=4" must be Type.field=LIMIT/SECONDS, e.g. Query.forecast=10/60 (several: comma-separated; or none)' });
    expect(await run('update', id, '--limits', 'Query.forecast=0/60')).toEqual({ code: 1, out: 'error: "limit" must be a positive integer.' });
  });

  it('manages consumers and plans: create, show, update, list, search, delete — directly and through a server', async () => {
    const plan = await json('create-plan', '--name', 'Gold', '--budget', '100/60', '--quotas', '1000/day', '--limits', 'Query.station=50/60', '--max-cost', '40');
    expect(plan).toEqual({
      id: expect.any(String),
      name: 'Gold',
      budgets: [{ points: 100, duration: 60 }],
      quotas: [{ points: 1000, period: 'DAY' }],
      limits: [{ coordinate: 'Query.station', limit: 50, duration: 60 }],
      maxOperationCost: 40,
      createdAt: expect.any(String),
    });
    expect(await json('show-plan', plan.id)).toEqual(plan);
    const externalId = `cus_${Date.now()}`;
    const made = await json('create-consumer', '--name', 'Globex', '--external-id', externalId, '--plan', plan.id, '--scopes', 'read');
    expect(made).toMatchObject({
      consumer: { name: 'Globex', externalId, plan: { id: plan.id, name: 'Gold' }, budgets: [], quotas: [], limits: [] },
      key: { secret: expect.stringMatching(/^tg_/), apiKey: { name: 'Globex key', scopes: ['read'], status: 'active', consumer: { id: made.consumer.id, name: 'Globex' } } },
    });
    const consumerId = made.consumer.id;
    expect((await json('consumers', '--search', externalId)).map((c: { id: string }) => c.id)).toEqual([consumerId]);
    const updated = await json('update-consumer', consumerId, '--budget', '20/60', '--quotas', '500/month', '--external-id', 'none');
    expect(updated).toMatchObject({ id: consumerId, externalId: null, budgets: [{ points: 20, duration: 60 }], quotas: [{ points: 500, period: 'MONTH' }], plan: { id: plan.id } });
    const shown = await json('show-consumer', consumerId);
    expect(shown).toEqual({ ...updated, keys: [expect.objectContaining({ id: made.key.apiKey.id, status: 'active' })] });
    expect((await run('show-consumer', consumerId)).out).toMatch(new RegExp(`^plan: +${plan.id} \\(Gold\\)$`, 'm'));
    expect(await json('update-plan', plan.id, '--name', 'Gold 2', '--max-cost', 'none', '--quotas', 'none')).toMatchObject({ name: 'Gold 2', maxOperationCost: null, quotas: [], budgets: plan.budgets });
    expect((await run('plans')).out).toMatch(new RegExp(`^${plan.id} +Gold 2 +100/60s +Query\\.station=50/60s +-$`, 'm'));

    // Deleting is refused while in use, with the API's reason; then done.
    expect(await run('delete-plan', plan.id)).toEqual({ code: 1, out: expect.stringMatching(/^error: 1 consumer\(s\) are on this plan/) });
    expect(await run('delete-consumer', consumerId)).toEqual({ code: 1, out: expect.stringMatching(/^error: This consumer has 1 live key/) });
    await json('revoke', made.key.apiKey.id);
    expect(await json('delete-consumer', consumerId)).toMatchObject({ id: consumerId });
    expect(await json('delete-plan', plan.id)).toMatchObject({ id: plan.id });
    expect(await run('show-plan', plan.id)).toEqual({ code: 1, out: `error: No plan with id "${plan.id}".` });
    expect(await run('update-consumer', consumerId, '--name', 'x')).toEqual({ code: 1, out: `error: No consumer with id "${consumerId}".` });
    expect(await run('update-plan', plan.id)).toEqual({ code: 1, out: 'error: update-plan needs something to change: --name, --budget, --quotas, --limits or --max-cost' });
    expect(await run('create-plan', '--name', 'x', '--quotas', '10/week')).toEqual({ code: 1, out: 'error: --quotas "10/week" must be POINTS/day or POINTS/month, e.g. 1000/day,30000/month (or none)' });

    await withServerOnSameDatabase(async (server) => {
      const remote = remoteTo(server);
      const created = await remote('create-plan', '--name', 'Remote', '--budget', '10/60', '--json');
      const remotePlan = JSON.parse(created.out);
      expect(JSON.parse((await remote('show-plan', remotePlan.id, '--json')).out)).toEqual(remotePlan);
      expect(await json('show-plan', remotePlan.id)).toEqual(remotePlan); // the same answer without the server
      expect(await remote('create-plan', '--name', 'Bad', '--limits', 'Query.nope=1/60')).toEqual({ code: 1, out: expect.stringMatching(/^error: "Query\.nope" carries no @rateLimit/) });
      const consumer = JSON.parse((await remote('create-consumer', '--name', 'Remote Co', '--plan', remotePlan.id, '--json')).out);
      expect(consumer.key.apiKey.consumer).toEqual({ id: consumer.consumer.id, name: 'Remote Co' });
    });
  });

  it('explains its mistakes, and --help is help', async () => {
    expect(await run('create')).toEqual({ code: 1, out: 'error: --name is required' });
    expect(await run('create', '--name', 'x', '--scopes', 'root')).toEqual({ code: 1, out: expect.stringMatching(/^error: Unknown scope "root"/) });
    expect(await run('create', '--name', 'x', '--expires', 'someday')).toEqual({ code: 1, out: expect.stringMatching(/^error: --expires "someday" is not a date/) });
    expect(await run('revoke', '00000000-0000-4000-8000-000000000000')).toEqual({ code: 1, out: 'error: No API key with id "00000000-0000-4000-8000-000000000000".' });
    expect(await run('revoke')).toEqual({ code: 1, out: 'error: revoke needs a key id' });
    expect(await run('rotate', 'x', '--grace', 'soon')).toEqual({ code: 1, out: expect.stringMatching(/--grace "soon" must be a whole number/) });
    expect(await run('--url', 'http://127.0.0.1:1', 'list')).toEqual({ code: 1, out: expect.stringMatching(/--url needs an admin key/) });
    const unknown = await run('frobnicate');
    expect(unknown.code).toBe(2);
    expect(unknown.out).toMatch(/^Usage: npm run keys/);
    expect(unknown.out).toMatch(/error: unknown command "frobnicate"/);
    for (const help of [['--help'], ['-h'], ['help']]) {
      const res = await run(...help);
      expect(res.code).toBe(0);
      expect(res.out).toMatch(/^Usage: npm run keys -- \[--url URL \[--key-stdin\]\] \[--json\] <command>/);
      expect(res.out).toMatch(/TOLLGATE_ADMIN_KEY/);
    }
    expect((await run('list', '--bogus')).code).toBe(2);
  });
});
