import { clearableList, defined, expiry, integer, limits, list, UsageError, windows, type Limit, type Window } from './args';
import type { Command, Context, Values } from './command';
import { details, limitsText, table, when, windowsText } from './output';

/** Everything the CLI shows of a key: one selection for show, list, create, update, rotate and revoke. */
export const KEY_FIELDS = `id name start scopes createdAt expiresAt revokedAt lastUsedAt previousSecretValidUntil
  budget { points duration } budgets { points duration } limits { coordinate limit duration }
  consumer { id name } allowedIps allowedOrigins`;

export type Key = {
  id: string;
  name: string;
  start: string;
  scopes: string[];
  createdAt: string;
  expiresAt: string | null;
  revokedAt: string | null;
  lastUsedAt: string | null;
  previousSecretValidUntil: string | null;
  budget: Window | null;
  budgets: Window[];
  limits: Limit[];
  consumer: { id: string; name: string } | null;
  allowedIps: string[];
  allowedOrigins: string[];
};

export const status = (key: Key) => (key.revokedAt ? 'revoked' : key.expiresAt && new Date(key.expiresAt) <= new Date() ? 'expired' : 'active');
/** A key as the CLI prints it in JSON: the API's fields plus its status. */
const withStatus = (key: Key) => ({ ...key, status: status(key) });
const budgetText = (key: Key) => windowsText([...(key.budget ? [key.budget] : []), ...key.budgets]);

export function keyDetails(key: Key): [string, string][] {
  return [
    ['id', key.id],
    ['name', key.name],
    ['status', status(key)],
    ['start', `${key.start}…`],
    ['scopes', key.scopes.join(',') || '(none)'],
    // Without one of its own, the key spends its consumer's budgets, or the server's default.
    ['budget', budgetText(key) || (key.consumer ? "(its consumer's)" : '(server default)')],
    ['limits', limitsText(key.limits) || '(schema)'],
    ['consumer', key.consumer ? `${key.consumer.id} (${key.consumer.name})` : '-'],
    ['ips', key.allowedIps.join(',') || 'any'],
    ['origins', key.allowedOrigins.join(',') || 'any'],
    ['expires', key.expiresAt ?? 'never'],
    ['last used', key.lastUsedAt ?? 'never'],
    ['created', key.createdAt],
    ...(key.previousSecretValidUntil ? [['old secret until', key.previousSecretValidUntil] as [string, string]] : []),
  ];
}

/** `--budget` on a key: the first window is its `budget`, more go to `budgets`; none clears both. */
function keyBudget(values: Values) {
  const given = windows('budget', values.budget);
  if (given === undefined) return {};
  return given === null ? { budget: null, budgets: [] } : { budget: given[0], budgets: given.slice(1) };
}

/** What create and update send, from the options; on update, `none`/`never` clear. */
function keyInput(values: Values, updating: boolean) {
  const expires = expiry(values.expires);
  const fieldLimits = limits(values.limits);
  return defined({
    name: values.name,
    scopes: list(values.scopes),
    expiresAt: expires ? expires.toISOString() : expires === null && updating ? null : undefined,
    consumerId: values.consumer === 'none' && updating ? null : values.consumer,
    ...keyBudget(values),
    limits: fieldLimits === null ? [] : fieldLimits,
    allowedIps: updating ? clearableList(values['allowed-ips']) : list(values['allowed-ips']),
    allowedOrigins: updating ? clearableList(values['allowed-origins']) : list(values['allowed-origins']),
  });
}

/** Said beside a local command that set field limits: only a server knows which fields its schema limits. */
export async function uncheckedLimits(ctx: Context) {
  if (ctx.values.limits && ctx.values.limits !== 'none' && (await ctx.admin()).local) {
    ctx.note('note: field limits were not checked against your schema (the CLI alone does not know it); a server checks them: use --url');
  }
}

const secret = (value: string, after = ''): [string, string] => ['secret', `${value}   (shown once: store it now${after})`];

const create: Command = {
  async run(ctx) {
    if (!ctx.values.name) throw new UsageError('--name is required');
    const input = keyInput(ctx.values, false);
    const admin = await ctx.admin();
    const { createApiKey } = await admin.request(`mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { ${KEY_FIELDS} } } }`, { input });
    ctx.print({ secret: createApiKey.secret as string, apiKey: withStatus(createApiKey.apiKey) }, (r) => details([...keyDetails(r.apiKey), secret(r.secret)]));
    await uncheckedLimits(ctx);
  },
};

const update: Command = {
  id: 'a key id',
  async run(ctx) {
    const input = keyInput(ctx.values, true);
    if (!Object.keys(input).length) {
      throw new UsageError('update needs something to change: --name, --scopes, --expires, --consumer, --budget, --limits, --allowed-ips or --allowed-origins');
    }
    const { updateApiKey } = await (await ctx.admin()).request(`mutation($id: ID!, $input: UpdateApiKeyInput!) { updateApiKey(id: $id, input: $input) { ${KEY_FIELDS} } }`, { id: ctx.id, input });
    ctx.print(withStatus(updateApiKey), (k) => [`updated ${k.id}`, ...details(keyDetails(k))]);
    await uncheckedLimits(ctx);
  },
};

const show: Command = {
  id: 'a key id',
  async run(ctx) {
    const { apiKey } = await (await ctx.admin()).request(`query($id: ID!) { apiKey(id: $id) { ${KEY_FIELDS} } }`, { id: ctx.id });
    if (!apiKey) throw new UsageError(`No API key with id "${ctx.id}".`);
    ctx.print(withStatus(apiKey), (k) => details(keyDetails(k)));
  },
};

const listKeys: Command = {
  async run(ctx) {
    const admin = await ctx.admin();
    const keys = await pages<Key>((after) =>
      admin.request(`query($after: String, $all: Boolean) { page: apiKeys(first: 100, after: $after, includeRevoked: $all) { pageInfo { hasNextPage endCursor } edges { node { ${KEY_FIELDS} } } } }`, { after, all: !!ctx.values.all }),
    );
    ctx.print(keys.map(withStatus), (rows) =>
      table(
        ['ID', 'START', 'STATUS', 'SCOPES', 'BUDGET', 'EXPIRES', 'LAST USED', 'CONSUMER', 'NAME'],
        rows.map((k) => [k.id, `${k.start}…`, k.status, k.scopes.join(',') || '-', budgetText(k) || '-', when(k.expiresAt, 'never'), when(k.lastUsedAt, 'never'), k.consumer?.name ?? '-', k.name]),
      ),
    );
  },
};

const revoke: Command = {
  id: 'a key id',
  async run(ctx) {
    const { revokeApiKey } = await (await ctx.admin()).request(`mutation($id: ID!) { revokeApiKey(id: $id) { ${KEY_FIELDS} } }`, { id: ctx.id });
    ctx.print(withStatus(revokeApiKey), (k) => [`revoked ${k.id} at ${k.revokedAt}`]);
  },
};

const rotate: Command = {
  id: 'a key id',
  async run(ctx) {
    const grace = ctx.values.grace === undefined ? 3600 : integer('grace', ctx.values.grace, { min: 0, max: 30 * 24 * 3600 })!;
    const { rotateApiKey } = await (await ctx.admin()).request(`mutation($id: ID!, $grace: Int) { rotateApiKey(id: $id, gracePeriodSeconds: $grace) { secret apiKey { ${KEY_FIELDS} } } }`, { id: ctx.id, grace });
    ctx.print({ secret: rotateApiKey.secret as string, apiKey: withStatus(rotateApiKey.apiKey) }, (r) =>
      details([
        ['id', r.apiKey.id],
        secret(r.secret, grace ? `; the old secret works until ${r.apiKey.previousSecretValidUntil}` : '; the old secret stopped working'),
      ]),
    );
  },
};

type AuditEvent = { id: string; at: string; actorKeyId: string | null; action: string; targetKeyId: string | null; targetId: string | null; details: Record<string, unknown> };

const audit: Command = {
  async run(ctx) {
    const first = integer('first', ctx.values.first, { min: 1, max: 100 }) ?? 50;
    const { auditEvents } = await (await ctx.admin()).request(
      'query($first: Int, $key: ID, $target: ID) { auditEvents(first: $first, keyId: $key, targetId: $target) { edges { node { id at actorKeyId action targetKeyId targetId details } } } }',
      { first, key: ctx.id || undefined, target: ctx.values.target },
    );
    const events = auditEvents.edges.map((e: { node: AuditEvent }) => e.node) as AuditEvent[];
    ctx.print(events, (rows) =>
      table(
        ['AT', 'ACTION', 'ACTOR', 'TARGET', 'DETAILS'],
        rows.map((e) => [e.at, e.action, e.actorKeyId ?? 'cli', e.targetKeyId ?? e.targetId ?? '-', JSON.stringify(e.details)]),
      ),
    );
  },
};

/** Every page of a connection (selected as `page`), in order. */
export async function pages<N>(fetchPage: (after: string | null) => Promise<{ page: { pageInfo: { hasNextPage: boolean; endCursor: string | null }; edges: { node: N }[] } }>): Promise<N[]> {
  const nodes: N[] = [];
  let after: string | null = null;
  do {
    const { page } = await fetchPage(after);
    nodes.push(...page.edges.map((e) => e.node));
    after = page.pageInfo.hasNextPage ? page.pageInfo.endCursor : null;
  } while (after);
  return nodes;
}

export const keyCommands: Record<string, Command> = { create, update, show, list: listKeys, revoke, rotate, audit };
