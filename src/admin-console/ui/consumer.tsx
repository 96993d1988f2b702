import { useMemo, useRef, useState } from 'preact/hooks';
import { gql } from './api';
import { UsageChart, type Bucket } from './chart';
import { PlanSelect } from './consumers';
import { compact, duration, fromLocalInput, toLocalInput } from './format';
import { KEY_FIELDS, keyStatus, type KeyNode } from './keys';
import { Field, Problem, Time, useQuery } from './widgets';

type FullBucket = Bucket & { refusals: { gate: string; coordinate: string | null; count: number }[]; fields: { coordinate: string; calls: number; points: number; refused: number }[] };

const RANGES: Record<string, { ms: number; label: string; granularities: string[] }> = {
  hour: { ms: 3_600_000, label: 'Last hour', granularities: ['MINUTE'] },
  day: { ms: 86_400_000, label: 'Last 24 hours', granularities: ['HOUR', 'MINUTE'] },
  month: { ms: 30 * 86_400_000, label: 'Last 30 days', granularities: ['DAY', 'HOUR'] },
  custom: { ms: 0, label: 'Custom', granularities: ['MINUTE', 'HOUR', 'DAY'] },
};

const CONSUMER = `query ConsoleConsumer($id: ID!, $from: DateTime!, $to: DateTime!, $granularity: UsageGranularity) {
  consumer(id: $id) {
    id name externalId createdAt
    plan { id name budgets { points duration } quotas { points period } limits { coordinate limit duration } }
    budgets { points duration } quotas { points period } limits { coordinate limit duration }
    keys(first: 50) { totalCount edges { node { ${KEY_FIELDS} } } }
    history: usageHistory(from: $from, to: $to, granularity: $granularity) {
      start operations refused points refusals { gate coordinate count } fields { coordinate calls points refused }
    }
    windows { limit window period used remaining resetAt }
  }
}`;

type Standing = { limit: number; window: number; period: string | null; used: number; remaining: number; resetAt: string };

/** Its windows and quotas as the gates' own counters have them now (Consumer.windows). */
function Windows({ windows, source }: { windows: Standing[]; source: string }) {
  return (
    <table>
      <caption class="sr-only">Windows and quotas</caption>
      <thead><tr><th scope="col">Window ({source})</th><th scope="col" class="num">Used</th><th scope="col" class="num">Left</th><th scope="col">Resets</th></tr></thead>
      <tbody>
        {windows.map((w) => (
          <tr>
            <th scope="row">{compact(w.limit)} points per {w.period ? `UTC ${w.period === 'DAY' ? 'day' : 'month'} (quota)` : duration(w.window)}</th>
            <td class="num">{compact(w.used)}</td>
            <td class="num">{compact(w.remaining)} ({Math.round((100 * w.remaining) / w.limit)} %)</td>
            <td>{w.used > 0 ? <Time value={w.resetAt} /> : '—'}</td>
          </tr>
        ))}
      </tbody>
    </table>
  );
}

/** One consumer: plan, windows and what is left, usage chart with range and granularity, per-gate refusals, per-field use, keys. */
export function ConsumerPage({ id }: { id: string }) {
  const [range, setRange] = useState('day');
  const [granularity, setGranularity] = useState('HOUR');
  const [custom, setCustom] = useState(() => ({ from: new Date(Date.now() - 7 * 86_400_000), to: new Date() }));
  const [editing, setEditing] = useState(false);
  const [saveError, setSaveError] = useState<string>();
  const [tick, setTick] = useState(0);
  const vars = useMemo(() => {
    const now = new Date();
    const from = range === 'custom' ? custom.from : new Date(now.getTime() - RANGES[range].ms);
    const to = range === 'custom' ? custom.to : now;
    return { id, from, to, granularity };
  }, [id, range, granularity, custom, tick]);
  const [{ data, error, loading }, reload] = useQuery(CONSUMER, vars, [vars]);
  // A range the server refuses (e.g. 40 days of hours) shows its error over what was shown: the controls stay to fix it.
  const shown = useRef<any>(undefined);
  if (data) shown.current = data.consumer;
  const c = shown.current;
  // An emptied (or unfinished) date is left out: the field says it is required, the range stays.
  const pickDate = (end: 'from' | 'to') => (e: Event) => {
    const date = fromLocalInput((e.target as HTMLInputElement).value);
    if (date) setCustom((range) => ({ ...range, [end]: date }));
  };
  const pickRange = (value: string) => {
    setRange(value);
    if (!RANGES[value].granularities.includes(granularity)) setGranularity(RANGES[value].granularities[0]);
  };
  const save = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.target as HTMLFormElement);
    const planId = String(form.get('planId'));
    try {
      await gql('mutation ConsoleUpdateConsumer($id: ID!, $input: UpdateConsumerInput!) { updateConsumer(id: $id, input: $input) { id } }', {
        // The plan is sent only when another was chosen: an edit of the name never moves the consumer.
        id, input: { name: String(form.get('name')).trim(), externalId: String(form.get('externalId')).trim() || null, ...(planId !== (c.plan?.id ?? '') ? { planId: planId || null } : {}) },
      });
      setEditing(false);
      reload();
    } catch (e) {
      setSaveError((e as Error).message);
    }
  };
  const history: FullBucket[] = c?.history ?? [];
  const gates = new Map<string, number>();
  const fields = new Map<string, { calls: number; points: number; refused: number }>();
  for (const b of history) {
    for (const r of b.refusals) gates.set(r.coordinate ? `${r.gate} (${r.coordinate})` : r.gate, (gates.get(r.coordinate ? `${r.gate} (${r.coordinate})` : r.gate) ?? 0) + r.count);
    for (const f of b.fields) {
      const sum = fields.get(f.coordinate) ?? { calls: 0, points: 0, refused: 0 };
      fields.set(f.coordinate, { calls: sum.calls + f.calls, points: sum.points + f.points, refused: sum.refused + f.refused });
    }
  }
  const own = c && (c.budgets.length > 0 || c.quotas.length > 0);
  return (
    <>
      <p><a href="#/consumers">← Consumers</a></p>
      <h1 tabIndex={-1}>{c ? c.name : 'Consumer'}</h1>
      <Problem message={error} />
      {c === null && <p role="alert">No consumer with this id.</p>}
      {c && (
        <>
          {editing ? (
            <form class="panel" onSubmit={save} aria-label={`Edit ${c.name}`}>
              <div class="grid">
                <Field label="Name"><input name="name" required defaultValue={c.name} /></Field>
                <Field label="External id"><input name="externalId" defaultValue={c.externalId ?? ''} /></Field>
                <Field label="Plan" hint="Live: its keys spend under the new plan within a second."><PlanSelect current={c.plan} /></Field>
              </div>
              <Problem message={saveError} />
              <div class="row"><button type="submit" class="primary">Save consumer</button><button type="button" onClick={() => setEditing(false)}>Cancel</button></div>
            </form>
          ) : (
            <p>
              Plan: <strong data-plan>{c.plan ? c.plan.name : 'none'}</strong> · External id: {c.externalId ?? '—'} · Created <Time value={c.createdAt} />{' '}
              <button type="button" onClick={() => setEditing(true)}>Edit</button>
            </p>
          )}
          <h2>Windows and quotas</h2>
          <Windows windows={c.windows} source={own ? 'its own' : c.plan ? `plan ${c.plan.name}` : "the server's default"} />
          <h2>Usage</h2>
          <form class="row" aria-label="Usage range" onSubmit={(e) => (e.preventDefault(), setTick((t) => t + 1))}>
            <Field label="Range">
              <select value={range} onChange={(e) => pickRange((e.target as HTMLSelectElement).value)}>
                {Object.entries(RANGES).map(([value, r]) => <option value={value}>{r.label}</option>)}
              </select>
            </Field>
            {range === 'custom' && (
              <>
                <Field label="From"><input type="datetime-local" required defaultValue={toLocalInput(custom.from)} onChange={pickDate('from')} /></Field>
                <Field label="To"><input type="datetime-local" required defaultValue={toLocalInput(custom.to)} onChange={pickDate('to')} /></Field>
              </>
            )}
            <Field label="Granularity">
              <select value={granularity} onChange={(e) => setGranularity((e.target as HTMLSelectElement).value)}>
                {RANGES[range].granularities.map((g) => <option value={g}>{g.toLowerCase()}</option>)}
              </select>
            </Field>
            <button type="submit">Refresh</button>
          </form>
          <div data-usage aria-busy={loading ? 'true' : 'false'}>
            <UsageChart buckets={history} from={vars.from} to={vars.to} granularity={granularity} />
          </div>
          <div class="cards">
            <section aria-label="Refusals by gate">
              <h2>Refusals by gate</h2>
              <table>
                <thead><tr><th scope="col">Gate</th><th scope="col" class="num">Refused</th></tr></thead>
                <tbody>
                  {[...gates].map(([gate, count]) => <tr><th scope="row">{gate}</th><td class="num">{compact(count)}</td></tr>)}
                  {gates.size === 0 && <tr><td colSpan={2}>None refused.</td></tr>}
                </tbody>
              </table>
            </section>
            <section aria-label="Per field">
              <h2>Per field</h2>
              <table>
                <thead><tr><th scope="col">Field</th><th scope="col" class="num">Calls</th><th scope="col" class="num">Points</th><th scope="col" class="num">Refused</th></tr></thead>
                <tbody>
                  {[...fields].map(([coordinate, f]) => <tr><th scope="row"><code>{coordinate}</code></th><td class="num">{compact(f.calls)}</td><td class="num">{compact(f.points)}</td><td class="num">{compact(f.refused)}</td></tr>)}
                  {fields.size === 0 && <tr><td colSpan={4}>No limited field was called.</td></tr>}
                </tbody>
              </table>
            </section>
          </div>
          <h2>Keys ({c.keys.totalCount})</h2>
          <table>
            <thead><tr><th scope="col">Name</th><th scope="col">Status</th><th scope="col">Scopes</th><th scope="col">Last used</th></tr></thead>
            <tbody>
              {c.keys.edges.map(({ node: k }: { node: KeyNode }) => (
                <tr><th scope="row">{k.name} <code>{k.start}…</code></th><td>{keyStatus(k).label}</td><td>{k.scopes.join(', ')}</td><td><Time value={k.lastUsedAt} empty="never" /></td></tr>
              ))}
              {c.keys.edges.length === 0 && <tr><td colSpan={4}>No live keys. <a href="#/keys">Create one on the Keys screen.</a></td></tr>}
            </tbody>
          </table>
        </>
      )}
    </>
  );
}
