import { clearable, defined, expiry, integer, limits, list, quotas, UsageError, windows, type Limit, type Quota, type Window } from './args';
import type { Command, Values } from './command';
import { KEY_FIELDS, pages, status, uncheckedLimits, type Key } from './key-commands';
import { details, limitsText, table, windowsText } from './output';

const WINDOWS = 'budgets { points duration } quotas { points period } limits { coordinate limit duration }';
const PLAN_FIELDS = `id name ${WINDOWS} maxOperationCost createdAt`;
const CONSUMER_FIELDS = `id name externalId plan { id name } ${WINDOWS} createdAt`;

type Plan = { id: string; name: string; budgets: Window[]; quotas: Quota[]; limits: Limit[]; maxOperationCost: number | null; createdAt: string };
type Consumer = { id: string; name: string; externalId: string | null; plan: { id: string; name: string } | null; budgets: Window[]; quotas: Quota[]; limits: Limit[]; createdAt: string };

/** `--budget`, `--quotas`, `--limits` of a consumer or plan: lists, which `none` empties. */
function limitsInput(values: Values) {
  const empty = <T>(v: T[] | null | undefined) => (v === null ? [] : v);
  return { budgets: empty(windows('budget', values.budget)), quotas: empty(quotas(values.quotas)), limits: empty(limits(values.limits)) };
}

function planInput(values: Values) {
  const maxCost = clearable(values['max-cost']);
  return defined({ name: values.name, ...limitsInput(values), maxOperationCost: maxCost === null ? null : integer('max-cost', maxCost, { min: 1 }) });
}

function consumerInput(values: Values, updating: boolean) {
  return defined({
    name: values.name,
    externalId: updating ? clearable(values['external-id']) : values['external-id'],
    planId: updating ? clearable(values.plan) : values.plan,
    ...limitsInput(values),
  });
}

const planDetails = (p: Plan): [string, string][] => [
  ['id', p.id],
  ['name', p.name],
  ['budget', windowsText(p.budgets) || '(server default)'],
  ['quotas', windowsText([], p.quotas) || '-'],
  ['limits', limitsText(p.limits) || '(schema)'],
  ['max cost', p.maxOperationCost === null ? '(server default)' : String(p.maxOperationCost)],
  ['created', p.createdAt],
];

const consumerDetails = (c: Consumer): [string, string][] => [
  ['id', c.id],
  ['name', c.name],
  ['external id', c.externalId ?? '-'],
  ['plan', c.plan ? `${c.plan.id} (${c.plan.name})` : '(no plan)'],
  // Its own windows win over its plan's; where it has none, the plan's (or the server's) apply.
  ['budget', windowsText(c.budgets) || (c.plan ? "(its plan's)" : '(server default)')],
  ['quotas', windowsText([], c.quotas) || (c.plan ? "(its plan's)" : '-')],
  ['limits', limitsText(c.limits) || (c.plan ? "(its plan's)" : '(schema)')],
  ['created', c.createdAt],
];

const createConsumer: Command = {
  async run(ctx) {
    const { values } = ctx;
    if (!values.name) throw new UsageError('--name is required');
    const input = consumerInput(values, false);
    // Its first key: read-only unless --scopes says otherwise.
    const keyInput = defined({ name: `${values.name} key`, scopes: list(values.scopes) ?? ['read'], expiresAt: expiry(values.expires)?.toISOString() });
    const admin = await ctx.admin();
    const { createConsumer: consumer } = await admin.request(`mutation($input: CreateConsumerInput!) { createConsumer(input: $input) { ${CONSUMER_FIELDS} } }`, { input });
    let key: { secret: string; apiKey: Key } | null = null;
    if (!values['no-key']) {
      try {
        ({ createApiKey: key } = await admin.request(`mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { ${KEY_FIELDS} } } }`, { input: { ...keyInput, consumerId: consumer.id } }));
      } catch (error) {
        throw new UsageError(`consumer ${consumer.id} created, but not its key: ${(error as Error).message}`);
      }
    }
    ctx.print({ consumer: consumer as Consumer, key: key && { secret: key.secret, apiKey: { ...key.apiKey, status: status(key.apiKey) } } }, (r) => [
      `consumer: ${r.consumer.id}  ${r.consumer.name}`,
      ...(r.key ? [`key id:   ${r.key.apiKey.id}`, `secret:   ${r.key.secret}   (shown once: store it now)`] : []),
    ]);
    await uncheckedLimits(ctx);
  },
};

const updateConsumer: Command = {
  id: 'a consumer id',
  async run(ctx) {
    const input = consumerInput(ctx.values, true);
    if (!Object.keys(input).length) throw new UsageError('update-consumer needs something to change: --name, --external-id, --plan, --budget, --quotas or --limits');
    const { updateConsumer: c } = await (await ctx.admin()).request(`mutation($id: ID!, $input: UpdateConsumerInput!) { updateConsumer(id: $id, input: $input) { ${CONSUMER_FIELDS} } }`, { id: ctx.id, input });
    ctx.print(c as Consumer, (v) => [`updated ${v.id}`, ...details(consumerDetails(v))]);
    await uncheckedLimits(ctx);
  },
};

const showConsumer: Command = {
  id: 'a consumer id',
  async run(ctx) {
    const { consumer } = await (await ctx.admin()).request(
      `query($id: ID!) { consumer(id: $id) { ${CONSUMER_FIELDS} keys(first: 100) { totalCount edges { node { id name start scopes revokedAt expiresAt } } } } }`,
      { id: ctx.id },
    );
    if (!consumer) throw new UsageError(`No consumer with id "${ctx.id}".`);
    const { keys, ...rest } = consumer;
    const value = { ...(rest as Consumer), keys: keys.edges.map((e: { node: Key }) => ({ ...e.node, status: status(e.node) })) as (Key & { status: string })[] };
    ctx.print(value, (v) => [...details([...consumerDetails(v), ['keys', String(keys.totalCount)]]), ...v.keys.map((k) => `  ${k.id}  ${k.start}…  ${k.status}  ${k.scopes.join(',') || '-'}  ${k.name}`)]);
  },
};

const listConsumers: Command = {
  async run(ctx) {
    const admin = await ctx.admin();
    const rows = await pages<Consumer>((after) =>
      admin.request(`query($after: String, $search: String) { page: consumers(first: 100, after: $after, search: $search) { pageInfo { hasNextPage endCursor } edges { node { ${CONSUMER_FIELDS} } } } }`, { after, search: ctx.values.search }),
    );
    ctx.print(rows, (cs) =>
      table(['ID', 'NAME', 'EXTERNAL ID', 'PLAN', 'WINDOWS', 'LIMITS'], cs.map((c) => [c.id, c.name, c.externalId ?? '-', c.plan?.name ?? '(no plan)', windowsText(c.budgets, c.quotas) || '-', limitsText(c.limits) || '-'])),
    );
  },
};

const deleteConsumer: Command = {
  id: 'a consumer id',
  async run(ctx) {
    const { deleteConsumer: c } = await (await ctx.admin()).request(`mutation($id: ID!) { deleteConsumer(id: $id) { ${CONSUMER_FIELDS} } }`, { id: ctx.id });
    ctx.print(c as Consumer, (v) => [`deleted consumer ${v.id}  ${v.name}`]);
  },
};

const createPlan: Command = {
  async run(ctx) {
    if (!ctx.values.name) throw new UsageError('--name is required');
    const input = planInput(ctx.values);
    const { createPlan: p } = await (await ctx.admin()).request(`mutation($input: CreatePlanInput!) { createPlan(input: $input) { ${PLAN_FIELDS} } }`, { input });
    ctx.print(p as Plan, (v) => details(planDetails(v)));
    await uncheckedLimits(ctx);
  },
};

const updatePlan: Command = {
  id: 'a plan id',
  async run(ctx) {
    const input = planInput(ctx.values);
    if (!Object.keys(input).length) throw new UsageError('update-plan needs something to change: --name, --budget, --quotas, --limits or --max-cost');
    const { updatePlan: p } = await (await ctx.admin()).request(`mutation($id: ID!, $input: UpdatePlanInput!) { updatePlan(id: $id, input: $input) { ${PLAN_FIELDS} } }`, { id: ctx.id, input });
    ctx.print(p as Plan, (v) => [`updated ${v.id}`, ...details(planDetails(v))]);
    await uncheckedLimits(ctx);
  },
};

const showPlan: Command = {
  id: 'a plan id',
  async run(ctx) {
    const { plan } = await (await ctx.admin()).request(`query($id: ID!) { plan(id: $id) { ${PLAN_FIELDS} } }`, { id: ctx.id });
    if (!plan) throw new UsageError(`No plan with id "${ctx.id}".`);
    ctx.print(plan as Plan, (v) => details(planDetails(v)));
  },
};

const listPlans: Command = {
  async run(ctx) {
    const admin = await ctx.admin();
    const rows = await pages<Plan>((after) => admin.request(`query($after: String) { page: plans(first: 100, after: $after) { pageInfo { hasNextPage endCursor } edges { node { ${PLAN_FIELDS} } } } }`, { after }));
    ctx.print(rows, (ps) =>
      table(['ID', 'NAME', 'WINDOWS', 'LIMITS', 'MAX COST'], ps.map((p) => [p.id, p.name, windowsText(p.budgets, p.quotas) || '(server defaults)', limitsText(p.limits) || '-', p.maxOperationCost === null ? '-' : String(p.maxOperationCost)])),
    );
  },
};

const deletePlan: Command = {
  id: 'a plan id',
  async run(ctx) {
    const { deletePlan: p } = await (await ctx.admin()).request(`mutation($id: ID!) { deletePlan(id: $id) { ${PLAN_FIELDS} } }`, { id: ctx.id });
    ctx.print(p as Plan, (v) => [`deleted plan ${v.id}  ${v.name}`]);
  },
};

export const consumerCommands: Record<string, Command> = {
  'create-consumer': createConsumer,
  'update-consumer': updateConsumer,
  'show-consumer': showConsumer,
  consumers: listConsumers,
  'delete-consumer': deleteConsumer,
  'create-plan': createPlan,
  'update-plan': updatePlan,
  'show-plan': showPlan,
  plans: listPlans,
  'delete-plan': deletePlan,
};
