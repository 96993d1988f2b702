import { date, integer, oneOf, UsageError } from './args';
import type { Command, Values } from './command';
import { csv } from './output';
import type { UsageBucket } from '../usage/history';

/** A usage bucket as the admin API answers it in JSON (its start an ISO string). */
type Bucket = Omit<UsageBucket, 'start'> & { start: string };

function period(command: string, values: Values) {
  if (!values.from || !values.to) throw new UsageError(`${command} needs --from and --to dates (e.g. --from 2026-11-01 --to 2026-12-01)`);
  return { from: date('from', values.from).toISOString(), to: date('to', values.to).toISOString() };
}

/** Usage history of a key or a consumer as CSV: per bucket, or per field (--fields) or refusal (--refusals). */
const usage: Command = {
  async run(ctx) {
    const { values, id } = ctx;
    if (!id === !values.consumer) throw new UsageError('usage needs a key id or --consumer ID (one of them)');
    if (values.fields && values.refusals) throw new UsageError('usage takes --fields or --refusals, not both');
    const granularity = oneOf('granularity', values.granularity, ['minute', 'hour', 'day'] as const, 'hour');
    const range = period('usage', values);
    const subject = values.consumer ? 'consumer' : 'apiKey';
    const { node } = await (await ctx.admin()).request(
      `query($id: ID!, $from: DateTime!, $to: DateTime!, $g: UsageGranularity) { node: ${subject}(id: $id) { usageHistory(from: $from, to: $to, granularity: $g) {
        start operations refused points refunded errors refusals { gate coordinate count } fields { coordinate calls points refused } } } }`,
      { id: values.consumer ?? id, ...range, g: granularity.toUpperCase() },
    );
    if (!node) throw new UsageError(values.consumer ? `No consumer with id "${values.consumer}".` : `No API key with id "${id}".`);
    const buckets = node.usageHistory as Bucket[];
    ctx.print(buckets, (bs) => {
      if (values.fields) return ['start,coordinate,calls,points,refused', ...bs.flatMap((b) => b.fields.map((f) => [b.start, f.coordinate, f.calls, f.points, f.refused].map(csv).join(',')))];
      if (values.refusals) return ['start,gate,coordinate,count', ...bs.flatMap((b) => b.refusals.map((r) => [b.start, r.gate, r.coordinate, r.count].map(csv).join(',')))];
      return ['start,operations,refused,points,refunded,errors', ...bs.map((b) => [b.start, b.operations, b.refused, b.points, b.refunded, b.errors].join(','))];
    });
  },
};

type Ranked = { consumer: { id: string; name: string; externalId: string | null } | null; key: { id: string; name: string } | null; points: number; operations: number; refused: number };

/** Who spent the most points in a period, as CSV. */
const top: Command = {
  async run(ctx) {
    const by = oneOf('by', ctx.values.by, ['consumer', 'key'] as const, 'consumer');
    const first = integer('first', ctx.values.first, { min: 1, max: 100 }) ?? 10;
    const range = period('top', ctx.values);
    const { usageTop } = await (await ctx.admin()).request(
      'query($from: DateTime!, $to: DateTime!, $by: UsageRankBy, $first: Int) { usageTop(from: $from, to: $to, by: $by, first: $first) { consumer { id name externalId } key { id name } points operations refused } }',
      { ...range, by: by.toUpperCase(), first },
    );
    ctx.print(usageTop as Ranked[], (rows) => [
      'id,name,points,operations,refused',
      ...rows.map((r) => {
        const who = r.consumer ?? r.key;
        return [who?.id, who?.name, r.points, r.operations, r.refused].map(csv).join(',');
      }),
    ]);
  },
};

export const usageCommands: Record<string, Command> = { usage, top };
