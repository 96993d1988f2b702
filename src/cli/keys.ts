#!/usr/bin/env node
import { parseArgs } from 'node:util';
import { ConfigError, loadConfig, redisTarget } from '../config';
import { openDatabase } from '../db/client';
import { tollgateMigrations } from '../db/migrate';
import { KeyService, type Page, type Result } from '../keys/service';
import { ConsumerService } from '../consumers/service';
import { KEY_CHANGED_CHANNEL } from '../keys/key-events';
import { createRedisClient } from '../counting/store';
import { UsageHistory, checkRange, type UsageBucket, type UsageSubject } from '../usage/history';
import type { Granularity } from '../db/schema';

const USAGE = `Usage: npm run keys -- [--url URL [--key-stdin]] <command>
  create --name NAME [--scopes admin,read] [--expires 2027-01-01] [--consumer ID]
         [--allowed-ips 203.0.113.0/24,2001:db8::/48] [--allowed-origins https://app.example.com]
                                                                    create a key; prints its secret once
                                                                    (restricted: refused from other addresses/origins)
  list [--all]                                                      list keys (--all includes revoked)
  create-consumer --name NAME [--external-id ID] [--plan ID] [--scopes read]
                                                                    a consumer and its first key, in one command
  consumers                                                         list consumers (id, name, external id, plan)
  plans                                                             list plans (id, name, windows, quotas)
  usage (<key id> | --consumer ID) --from DATE --to DATE [--granularity minute|hour|day] [--fields | --refusals]
                                                                    usage history as CSV (per field with --fields, per gate with --refusals)
  update <id> [--name N] [--scopes a,b] [--expires DATE|never] [--consumer ID|none] [--budget POINTS/SECONDS|none]
         [--allowed-ips CIDR,…|none] [--allowed-origins ORIGIN,…|none]
                                                                    change a key; what is not given stays as it is
  revoke <id>                                                       revoke a key
  rotate <id> [--grace 3600]                                        new secret, same id; old one works for --grace seconds

Without --url the CLI opens the database itself (DATABASE_URL, or the embedded DATA_DIR while no
server holds it). With --url it goes through a running server's admin API, authenticated by an
admin key read from TOLLGATE_ADMIN_KEY, or from standard input with --key-stdin (one line): the
way to manage keys while the embedded server is running. A key is never an argument: arguments
show in \`ps\` and shell history.`;

type KeySummary = { id: string; start: string; scopes: string[]; name: string; revokedAt: string | null; expiresAt: string | null };
type ConsumerSummary = { id: string; name: string; externalId: string | null; plan: string | null };
type PlanSummary = { id: string; name: string; budgets: { points: number; duration: number }[]; quotas: { points: number; period: string }[] };
type Outcome<T> = { ok: true; value: T } | { ok: false; message: string };

/** What the CLI needs, from the database directly or from a running server's admin API. */
type KeyAdmin = {
  create(input: { name: string; scopes: string[]; expiresAt?: Date; consumerId?: string; allowedIps?: string[]; allowedOrigins?: string[] }): Promise<Outcome<{ id: string; scopes: string[]; secret: string; allowedIps: string[]; allowedOrigins: string[] }>>;
  createConsumer(input: { name: string; externalId?: string; planId?: string }): Promise<Outcome<{ id: string; name: string }>>;
  consumers(): Promise<Outcome<ConsumerSummary[]>>;
  plans(): Promise<Outcome<PlanSummary[]>>;
  list(includeRevoked: boolean): Promise<Outcome<KeySummary[]>>;
  update(id: string, input: KeyUpdate): Promise<Outcome<UpdatedKey>>;
  revoke(id: string): Promise<Outcome<{ id: string; revokedAt: string }>>;
  rotate(id: string, grace: number): Promise<Outcome<{ id: string; secret: string }>>;
  usage(subject: UsageSubject, from: Date, to: Date, granularity: Granularity): Promise<Outcome<UsageBucket[]>>;
  close(): Promise<void>;
};

/** What `update` changes; absent: unchanged; null or []: cleared. */
type KeyUpdate = { name?: string; scopes?: string[]; expiresAt?: Date | null; consumerId?: string | null; budget?: { points: number; duration: number } | null; allowedIps?: string[]; allowedOrigins?: string[] };
type UpdatedKey = { id: string; name: string; scopes: string[]; expiresAt: string | null; allowedIps: string[]; allowedOrigins: string[] };

const iso = (d: Date | null | undefined) => (d ? d.toISOString() : null);
/** A comma-separated option as a list; absent: undefined (nothing set). */
const list = (value: string | undefined) => (value === undefined ? undefined : value.split(',').map((s) => s.trim()).filter(Boolean));

async function localAdmin(env: NodeJS.ProcessEnv): Promise<KeyAdmin> {
  const config = loadConfig(env);
  const database = await openDatabase({ url: config.databaseUrl, dataDir: config.dataDir, poolSize: 2, timeoutMs: config.databaseTimeoutMs, purpose: 'keys CLI' });
  const target = redisTarget(config);
  const redis = target ? createRedisClient(target, 'cli', config.limiterTimeoutMs) : undefined;
  redis?.on('error', () => undefined);
  await database.migrate(tollgateMigrations);
  // Running servers drop the key (or a consumer's keys) from their caches within a second.
  const announce = async (id: string) => void (await redis?.publish(KEY_CHANGED_CHANNEL, id).catch(() => undefined));
  const keys = new KeyService({
    db: database.db,
    prefix: config.keyPrefix,
    scopes: config.scopes,
    limitedCoordinates: new Set(), // the CLI sets no per-coordinate overrides
    onKeyChanged: announce,
  });
  const consumers = new ConsumerService({ db: database.db, limitedCoordinates: new Set(), maxQueryCost: config.maxQueryCost, onChanged: announce });
  const history = new UsageHistory(database.db);
  /** Every page of a list, in order. */
  async function all<T, R>(page: (after?: string) => Promise<Result<Page<T>>>, map: (node: T) => R | Promise<R>): Promise<Outcome<R[]>> {
    const out: R[] = [];
    let after: string | undefined;
    do {
      const next = await page(after);
      if (!next.ok) return next;
      for (const { node } of next.value.nodes) out.push(await map(node));
      after = next.value.hasNextPage ? next.value.nodes.at(-1)?.cursor : undefined;
    } while (after);
    return { ok: true, value: out };
  }
  return {
    async createConsumer(input) {
      const r = await consumers.createConsumer(input, null);
      return r.ok ? { ok: true, value: { id: r.value.id, name: r.value.name } } : r;
    },
    consumers: () => all((after) => consumers.consumers({ first: 100, after }), async (c) => ({ id: c.id, name: c.name, externalId: c.externalId, plan: c.planId ? ((await consumers.plan(c.planId))?.name ?? null) : null })),
    plans: () => all((after) => consumers.plans({ first: 100, after }), (p) => ({ id: p.id, name: p.name, budgets: p.budgets, quotas: p.quotas })),
    async create(input) {
      const r = await keys.create(input, null);
      return r.ok ? { ok: true, value: { id: r.value.key.id, scopes: r.value.key.scopes, secret: r.value.secret, allowedIps: r.value.key.allowedIps, allowedOrigins: r.value.key.allowedOrigins } } : r;
    },
    async list(includeRevoked) {
      const all: KeySummary[] = [];
      let after: string | undefined;
      do {
        const page = await keys.list({ first: 100, after, includeRevoked });
        if (!page.ok) return page;
        for (const { node } of page.value.nodes) all.push({ ...node, revokedAt: iso(node.revokedAt), expiresAt: iso(node.expiresAt) });
        after = page.value.hasNextPage ? page.value.nodes.at(-1)?.cursor : undefined;
      } while (after);
      return { ok: true, value: all };
    },
    async revoke(id) {
      const r = await keys.revoke(id, null);
      return r.ok ? { ok: true, value: { id: r.value.id, revokedAt: iso(r.value.revokedAt)! } } : r;
    },
    async update(id, input) {
      const r = await keys.update(id, input, null);
      return r.ok ? { ok: true, value: { id: r.value.id, name: r.value.name, scopes: r.value.scopes, expiresAt: iso(r.value.expiresAt), allowedIps: r.value.allowedIps, allowedOrigins: r.value.allowedOrigins } } : r;
    },
    async rotate(id, grace) {
      const r = await keys.rotate(id, grace, null);
      return r.ok ? { ok: true, value: { id: r.value.key.id, secret: r.value.secret } } : r;
    },
    async usage(subject, from, to, granularity) {
      const exists = 'keyId' in subject ? await keys.get(subject.keyId) : await consumers.consumer(subject.consumerId);
      if (!exists) return unknownSubject(subject);
      const range = checkRange(from, to, granularity);
      return range.ok ? { ok: true, value: await history.read(subject, range.value.from, range.value.to, granularity) } : range;
    },
    async close() {
      redis?.disconnect();
      await database.close();
    },
  };
}

function remoteAdmin(url: string, key: string): KeyAdmin {
  const endpoint = new URL('/graphql', url).toString();
  const call = async <T>(query: string, variables: Record<string, unknown>, pick: (data: any) => T): Promise<Outcome<T>> => {
    const response = await fetch(endpoint, { method: 'POST', headers: { 'content-type': 'application/json', 'x-api-key': key }, body: JSON.stringify({ query, variables }), signal: AbortSignal.timeout(15_000) });
    const body = (await response.json().catch(() => null)) as { data?: unknown; errors?: { message: string; extensions?: { code?: string } }[] } | null;
    if (body?.errors?.length) return { ok: false, message: body.errors.map((e) => `${e.message} (${e.extensions?.code ?? response.status})`).join('; ') };
    if (!response.ok || !body?.data) return { ok: false, message: `${endpoint} answered HTTP ${response.status}` };
    return { ok: true, value: pick(body.data) };
  };
  const KEY = 'id start name scopes revokedAt expiresAt';
  /** Every page of a connection of the admin API. */
  async function pages<N, R>(field: string, selection: string, map: (node: N) => R): Promise<Outcome<R[]>> {
    const out: R[] = [];
    let after: string | null = null;
    do {
      const page: Outcome<{ nodes: N[]; next: string | null }> = await call(
        `query($after: String) { ${field}(first: 100, after: $after) { pageInfo { hasNextPage endCursor } edges { node { ${selection} } } } }`,
        { after },
        (d) => ({ nodes: d[field].edges.map((e: { node: N }) => e.node), next: d[field].pageInfo.hasNextPage ? d[field].pageInfo.endCursor : null }),
      );
      if (!page.ok) return page;
      out.push(...page.value.nodes.map(map));
      after = page.value.next;
    } while (after);
    return { ok: true, value: out };
  }
  return {
    createConsumer: (input) => call('mutation($i: CreateConsumerInput!) { createConsumer(input: $i) { id name } }', { i: input }, (d) => d.createConsumer),
    consumers: () => pages('consumers', 'id name externalId plan { name }', (n: { plan: { name: string } | null } & ConsumerSummary) => ({ ...n, plan: n.plan?.name ?? null })),
    plans: () => pages('plans', 'id name budgets { points duration } quotas { points period }', (n: PlanSummary) => n),
    create: (input) =>
      call(
        'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id scopes allowedIps allowedOrigins } } }',
        { input: { name: input.name, scopes: input.scopes, expiresAt: input.expiresAt?.toISOString(), consumerId: input.consumerId, allowedIps: input.allowedIps, allowedOrigins: input.allowedOrigins } },
        (d) => ({ ...d.createApiKey.apiKey, secret: d.createApiKey.secret }),
      ),
    update: (id, input) =>
      call(
        'mutation($id: ID!, $input: UpdateApiKeyInput!) { updateApiKey(id: $id, input: $input) { id name scopes expiresAt allowedIps allowedOrigins } }',
        { id, input: { ...input, expiresAt: input.expiresAt === undefined ? undefined : iso(input.expiresAt) } },
        (d) => d.updateApiKey,
      ),
    async list(includeRevoked) {
      const all: KeySummary[] = [];
      let after: string | null = null;
      do {
        const page: Outcome<{ nodes: KeySummary[]; next: string | null }> = await call(
          `query($after: String, $all: Boolean) { apiKeys(first: 100, after: $after, includeRevoked: $all) { pageInfo { hasNextPage endCursor } edges { node { ${KEY} } } } }`,
          { after, all: includeRevoked },
          (d) => ({ nodes: d.apiKeys.edges.map((e: { node: KeySummary }) => e.node), next: d.apiKeys.pageInfo.hasNextPage ? d.apiKeys.pageInfo.endCursor : null }),
        );
        if (!page.ok) return page;
        all.push(...page.value.nodes);
        after = page.value.next;
      } while (after);
      return { ok: true, value: all };
    },
    revoke: (id) => call('mutation($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }', { id }, (d) => d.revokeApiKey),
    rotate: (id, grace) =>
      call('mutation($id: ID!, $grace: Int) { rotateApiKey(id: $id, gracePeriodSeconds: $grace) { secret apiKey { id } } }', { id, grace }, (d) => ({ id: d.rotateApiKey.apiKey.id, secret: d.rotateApiKey.secret })),
    usage: (subject, from, to, granularity) =>
      call(
        `query($id: ID!, $from: DateTime!, $to: DateTime!, $g: UsageGranularity) { node: ${'keyId' in subject ? 'apiKey' : 'consumer'}(id: $id) { usageHistory(from: $from, to: $to, granularity: $g) { start operations refused points refunded errors refusals { gate coordinate count } fields { coordinate calls points refused } } } }`,
        { id: 'keyId' in subject ? subject.keyId : subject.consumerId, from: from.toISOString(), to: to.toISOString(), g: granularity.toUpperCase() },
        (d) => d.node && d.node.usageHistory.map((b: UsageBucket & { start: string }) => ({ ...b, start: new Date(b.start) })),
      ).then((result) => (result.ok && !result.value ? unknownSubject(subject) : result)),
    close: async () => {},
  };
}

const unknownSubject = (subject: UsageSubject) =>
  ({ ok: false as const, message: 'keyId' in subject ? `No API key with id "${subject.keyId}".` : `No consumer with id "${subject.consumerId}".` });

/** Operators' entry point: same service code and database config as the server, or its admin API. */
export async function runKeysCli(
  argv: string[],
  out: (line: string) => void = console.log,
  env: NodeJS.ProcessEnv = process.env,
  stdin: NodeJS.ReadableStream = process.stdin,
): Promise<number> {
  const fail = (message: string, code = 1) => (out(`error: ${message}`), code);
  let parsed;
  try {
    parsed = parseArgs({
      args: argv,
      allowPositionals: true,
      options: {
        name: { type: 'string' },
        scopes: { type: 'string' },
        expires: { type: 'string' },
        grace: { type: 'string' },
        all: { type: 'boolean' },
        consumer: { type: 'string' },
        'allowed-ips': { type: 'string' },
        'allowed-origins': { type: 'string' },
        budget: { type: 'string' },
        'external-id': { type: 'string' },
        plan: { type: 'string' },
        from: { type: 'string' },
        to: { type: 'string' },
        granularity: { type: 'string' },
        fields: { type: 'boolean' },
        refusals: { type: 'boolean' },
        url: { type: 'string' },
        // Still parsed, only to refuse it with the reason (a strict parser would say "unknown option").
        key: { type: 'string' },
        'key-stdin': { type: 'boolean' },
        help: { type: 'boolean', short: 'h' },
      },
    });
  } catch (error) {
    out(USAGE);
    return fail((error as Error).message, 2);
  }
  const { values, positionals } = parsed;
  const [command, id] = positionals;
  if (values.help || command === 'help') {
    out(USAGE);
    return 0;
  }
  if (!command || !['create', 'list', 'update', 'revoke', 'rotate', 'create-consumer', 'consumers', 'plans', 'usage'].includes(command)) {
    out(USAGE);
    return command ? fail(`unknown command "${command}"`, 2) : 2;
  }
  // Mistakes in the arguments are reported before anything is opened.
  if ((command === 'create' || command === 'create-consumer') && !values.name) return fail('--name is required');
  // `never` and `none` clear, for update.
  const expiresAt = values.expires === 'never' ? null : values.expires ? new Date(values.expires) : undefined;
  if (expiresAt && Number.isNaN(expiresAt.getTime())) return fail(`--expires "${values.expires}" is not a date (use e.g. 2027-01-01, or never)`);
  if ((command === 'revoke' || command === 'rotate' || command === 'update') && !id) return fail(`${command} needs a key id`);
  const budgetMatch = values.budget === undefined || values.budget === 'none' ? null : /^(\d+)\/(\d+)s?$/.exec(values.budget);
  if (values.budget !== undefined && values.budget !== 'none' && !budgetMatch) return fail(`--budget "${values.budget}" must be POINTS/SECONDS, e.g. 500/60 (or none)`);
  const budget = values.budget === undefined ? undefined : budgetMatch ? { points: Number(budgetMatch[1]), duration: Number(budgetMatch[2]) } : null;
  const grace = values.grace === undefined ? 3600 : Number(values.grace);
  if (!Number.isInteger(grace) || grace < 0) return fail(`--grace "${values.grace}" must be a whole number of seconds`);
  const granularity = (values.granularity ?? 'hour').toLowerCase();
  const from = new Date(values.from ?? '');
  const to = new Date(values.to ?? '');
  if (command === 'usage') {
    if (!id === !values.consumer) return fail('usage needs a key id or --consumer ID (one of them)');
    if (!['minute', 'hour', 'day'].includes(granularity)) return fail(`--granularity "${values.granularity}" must be minute, hour or day`);
    if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) return fail('usage needs --from and --to dates (e.g. --from 2026-11-01 --to 2026-12-01)');
  }
  if (values.key !== undefined) {
    return fail('--key is not accepted: a key on the command line shows in `ps` and in shell history. Set TOLLGATE_ADMIN_KEY, or pipe it in with --key-stdin (e.g. `--key-stdin < admin-key.txt`) — and rotate the key you just typed.', 2);
  }
  if (values['key-stdin'] && !values.url) return fail('--key-stdin is for --url (the admin key of a running server)', 2);
  const adminKey = values['key-stdin'] ? await firstLine(stdin) : env.TOLLGATE_ADMIN_KEY?.trim();
  if (values.url && !adminKey) return fail(values['key-stdin'] ? '--key-stdin: standard input held no key' : '--url needs an admin key: set TOLLGATE_ADMIN_KEY, or pipe it in with --key-stdin');

  let admin: KeyAdmin;
  try {
    admin = values.url ? remoteAdmin(values.url, adminKey!) : await localAdmin(env);
  } catch (error) {
    if (error instanceof ConfigError) return fail(error.message);
    throw error;
  }
  try {
    switch (command) {
      case 'create': {
        const scopes = values.scopes ? values.scopes.split(',').map((s) => s.trim()).filter(Boolean) : [];
        const result = await admin.create({ name: values.name!, scopes, expiresAt: expiresAt ?? undefined, consumerId: values.consumer, allowedIps: list(values['allowed-ips']), allowedOrigins: list(values['allowed-origins']) });
        if (!result.ok) return fail(result.message);
        out(`id:     ${result.value.id}`);
        out(`scopes: ${result.value.scopes.join(',') || '(none)'}`);
        if (result.value.allowedIps.length) out(`ips:    ${result.value.allowedIps.join(',')}`);
        if (result.value.allowedOrigins.length) out(`origins: ${result.value.allowedOrigins.join(',')}`);
        out(`secret: ${result.value.secret}   (shown once: store it now)`);
        return 0;
      }
      case 'list': {
        const result = await admin.list(!!values.all);
        if (!result.ok) return fail(result.message);
        for (const node of result.value) {
          const state = node.revokedAt ? 'revoked' : node.expiresAt && new Date(node.expiresAt) < new Date() ? 'expired' : 'active';
          out([node.id, node.start + '…', state, node.scopes.join(',') || '-', node.name].join('  '));
        }
        return 0;
      }
      case 'create-consumer': {
        const consumer = await admin.createConsumer({ name: values.name!, externalId: values['external-id'], planId: values.plan });
        if (!consumer.ok) return fail(consumer.message);
        const scopes = values.scopes ? values.scopes.split(',').map((s) => s.trim()).filter(Boolean) : ['read'];
        const key = await admin.create({ name: `${values.name} key`, scopes, expiresAt: expiresAt ?? undefined, consumerId: consumer.value.id });
        if (!key.ok) return fail(`consumer ${consumer.value.id} created, but not its key: ${key.message}`);
        out(`consumer: ${consumer.value.id}  ${consumer.value.name}`);
        out(`key id:   ${key.value.id}`);
        out(`secret:   ${key.value.secret}   (shown once: store it now)`);
        return 0;
      }
      case 'consumers': {
        const result = await admin.consumers();
        if (!result.ok) return fail(result.message);
        for (const c of result.value) out([c.id, c.name, c.externalId ?? '-', c.plan ?? '(no plan)'].join('  '));
        return 0;
      }
      case 'plans': {
        const result = await admin.plans();
        if (!result.ok) return fail(result.message);
        for (const p of result.value) {
          const windows = [...p.budgets.map((b) => `${b.points}/${b.duration}s`), ...p.quotas.map((q) => `${q.points}/${q.period.toLowerCase()}`)];
          out([p.id, p.name, windows.join(',') || '(server defaults)'].join('  '));
        }
        return 0;
      }
      case 'usage': {
        const subject: UsageSubject = values.consumer ? { consumerId: values.consumer } : { keyId: id };
        const result = await admin.usage(subject, from, to, granularity as Granularity);
        if (!result.ok) return fail(result.message);
        out(values.fields ? 'start,coordinate,calls,points,refused' : values.refusals ? 'start,gate,coordinate,count' : 'start,operations,refused,points,refunded,errors');
        for (const b of result.value) {
          const start = b.start.toISOString();
          if (values.fields) for (const f of b.fields) out([start, f.coordinate, f.calls, f.points, f.refused].join(','));
          else if (values.refusals) for (const r of b.refusals) out([start, r.gate, r.coordinate ?? '', r.count].join(','));
          else out([start, b.operations, b.refused, b.points, b.refunded, b.errors].join(','));
        }
        return 0;
      }
      case 'update': {
        const cleared = (value: string | undefined) => (value === 'none' ? [] : list(value));
        const change: KeyUpdate = {
          name: values.name,
          scopes: list(values.scopes),
          expiresAt,
          consumerId: values.consumer === 'none' ? null : values.consumer,
          budget,
          allowedIps: cleared(values['allowed-ips']),
          allowedOrigins: cleared(values['allowed-origins']),
        };
        if (Object.values(change).every((v) => v === undefined)) return fail('update needs something to change: --name, --scopes, --expires, --consumer, --budget, --allowed-ips or --allowed-origins');
        const result = await admin.update(id, change);
        if (!result.ok) return fail(result.message);
        const k = result.value;
        out(`updated ${k.id}  ${k.name}  scopes ${k.scopes.join(',') || '(none)'}  expires ${k.expiresAt ?? 'never'}  ips ${k.allowedIps.join(',') || 'any'}  origins ${k.allowedOrigins.join(',') || 'any'}`);
        return 0;
      }
      case 'revoke': {
        const result = await admin.revoke(id);
        if (!result.ok) return fail(result.message);
        out(`revoked ${result.value.id} at ${result.value.revokedAt}`);
        return 0;
      }
      default: {
        const result = await admin.rotate(id, grace);
        if (!result.ok) return fail(result.message);
        out(`id:     ${result.value.id}`);
        out(`secret: ${result.value.secret}   (shown once: store it now; the old secret works for ${grace} s)`);
        return 0;
      }
    }
  } catch (error) {
    if (error instanceof ConfigError) return fail(error.message);
    if ((error as { cause?: { code?: string } }).cause?.code === 'ECONNREFUSED') return fail(`no server answers at ${values.url}`);
    throw error;
  } finally {
    await admin.close();
  }
}

/** The first line of a stream (the whole of it, up to 64 KB), trimmed. */
async function firstLine(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const chunk of stream) {
    text += String(chunk);
    if (text.length > 65_536 || text.includes('\n')) break;
  }
  return text.split('\n')[0].trim();
}

if (require.main === module) {
  runKeysCli(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
    },
    (err) => {
      process.stderr.write(err instanceof ConfigError ? `${err.message}\n` : `error: ${err instanceof Error ? err.message : String(err)}\n`);
      process.exitCode = 1;
    },
  );
}
