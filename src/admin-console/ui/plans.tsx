import { useState } from 'preact/hooks';
import { gql } from './api';
import { compact, duration } from './format';
import { Field, Pager, Problem, Time, usePages, useQuery } from './widgets';

type Budget = { points: number; duration: number };
type Quota = { points: number; period: 'DAY' | 'MONTH' };
type Limit = { coordinate: string; limit: number; duration: number };
type Plan = { id: string; name: string; budgets: Budget[]; quotas: Quota[]; limits: Limit[]; maxOperationCost: number | null; createdAt: string };

const PLAN_FIELDS = 'id name budgets { points duration } quotas { points period } limits { coordinate limit duration } maxOperationCost createdAt';

/** Editable rows of one list (windows, quotas or field limits): labelled inputs, add and remove. */
function Rows<T extends Record<string, string | number>>({ legend, rows, setRows, blank, columns }: {
  legend: string; rows: T[]; setRows: (rows: T[]) => void; blank: T;
  columns: { key: keyof T & string; label: string; type?: 'number' | 'text' | 'period' }[];
}) {
  const set = (i: number, key: string, value: string) => setRows(rows.map((r, j) => (j === i ? { ...r, [key]: typeof blank[key] === 'number' ? Number(value) : value } : r)));
  return (
    <fieldset>
      <legend>{legend}</legend>
      {rows.map((row, i) => (
        <div class="row">
          {columns.map((c) => (
            <label class="inline">
              {c.label}
              {c.type === 'period' ? (
                <select value={String(row[c.key])} onChange={(e) => set(i, c.key, (e.target as HTMLSelectElement).value)}>
                  <option value="DAY">UTC day</option><option value="MONTH">UTC month</option>
                </select>
              ) : c.type === 'text' ? (
                <input type="text" required value={row[c.key]} onInput={(e) => set(i, c.key, (e.target as HTMLInputElement).value)} />
              ) : (
                <input type="number" min={1} required value={row[c.key]} onInput={(e) => set(i, c.key, (e.target as HTMLInputElement).value)} />
              )}
            </label>
          ))}
          <button type="button" onClick={() => setRows(rows.filter((_, j) => j !== i))} aria-label={`Remove ${legend.toLowerCase()} row ${i + 1}`}>Remove</button>
        </div>
      ))}
      <button type="button" onClick={() => setRows([...rows, { ...blank }])}>Add {legend.toLowerCase().replace(/s$/, '')}</button>
    </fieldset>
  );
}

function PlanForm({ plan, onDone }: { plan?: Plan; onDone: (saved: boolean) => void }) {
  const [name, setName] = useState(plan?.name ?? '');
  const [budgets, setBudgets] = useState<Budget[]>(plan?.budgets ?? [{ points: 1000, duration: 3600 }]);
  const [quotas, setQuotas] = useState<Quota[]>(plan?.quotas ?? []);
  const [limits, setLimits] = useState<Limit[]>(plan?.limits ?? []);
  const [maxCost, setMaxCost] = useState(plan?.maxOperationCost ? String(plan.maxOperationCost) : '');
  const [error, setError] = useState<string>();
  const submit = async (event: Event) => {
    event.preventDefault();
    // Empty clears it (null): the server's MAX_QUERY_COST applies again.
    const input = { name: name.trim(), budgets, quotas, limits, maxOperationCost: maxCost ? Number(maxCost) : null };
    try {
      if (plan) await gql(`mutation ConsoleUpdatePlan($id: ID!, $input: UpdatePlanInput!) { updatePlan(id: $id, input: $input) { id } }`, { id: plan.id, input });
      else await gql(`mutation ConsoleCreatePlan($input: CreatePlanInput!) { createPlan(input: $input) { id } }`, { input });
      onDone(true);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <form class="panel" onSubmit={submit} aria-label={plan ? `Edit plan ${plan.name}` : 'New plan'}>
      <h2>{plan ? `Edit ${plan.name}` : 'New plan'}</h2>
      {plan && <p class="live" role="note"><strong>Changes are live.</strong> Every key of this plan's consumers spends under the new numbers within a second, on every instance, counting on from what it already spent.</p>}
      <Field label="Name"><input value={name} required onInput={(e) => setName((e.target as HTMLInputElement).value)} /></Field>
      <Rows legend="Windows" rows={budgets} setRows={setBudgets} blank={{ points: 1000, duration: 3600 }} columns={[{ key: 'points', label: 'Points' }, { key: 'duration', label: 'per seconds' }]} />
      <Rows legend="Quotas" rows={quotas} setRows={setQuotas} blank={{ points: 100000, period: 'MONTH' } as Quota} columns={[{ key: 'points', label: 'Points' }, { key: 'period', label: 'per', type: 'period' }]} />
      <Rows legend="Field limits" rows={limits} setRows={setLimits} blank={{ coordinate: 'Query.', limit: 60, duration: 60 }} columns={[{ key: 'coordinate', label: 'Field', type: 'text' }, { key: 'limit', label: 'Limit' }, { key: 'duration', label: 'per seconds' }]} />
      <Field label="Most points one operation may cost" hint="Empty: the server's MAX_QUERY_COST."><input type="number" min={1} value={maxCost} onInput={(e) => setMaxCost((e.target as HTMLInputElement).value)} /></Field>
      <Problem message={error} />
      <div class="row">
        <button type="submit" class="primary">{plan ? 'Save plan' : 'Create plan'}</button>
        <button type="button" onClick={() => onDone(false)}>Cancel</button>
      </div>
    </form>
  );
}

/** Plans: their windows, quotas and field limits; create one, edit one (live). */
export function Plans() {
  const pages = usePages();
  const [{ data, error, loading }, reload] = useQuery(
    `query ConsolePlans($after: String) { plans(first: 25, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { ${PLAN_FIELDS} } } } }`,
    { after: pages.after },
    [pages.after],
  );
  const [editing, setEditing] = useState<Plan | 'new' | null>(null);
  const [saved, setSaved] = useState<string>();
  const done = (ok: boolean) => {
    if (ok) setSaved(editing === 'new' ? 'Plan created.' : 'Plan saved: live within a second.');
    setEditing(null);
    reload();
  };
  return (
    <>
      <h1 tabIndex={-1}>Plans</h1>
      <p class="muted">A plan is a named set of limits sold to consumers. A change to a plan is live: its consumers' keys spend under the new numbers within a second.</p>
      {saved && <p role="status">{saved}</p>}
      {editing ? <PlanForm key={editing === 'new' ? 'new' : editing.id} plan={editing === 'new' ? undefined : editing} onDone={done} /> : (
        <div class="row"><button type="button" class="primary" onClick={() => (setSaved(undefined), setEditing('new'))}>New plan</button></div>
      )}
      <Problem message={error} />
      <table aria-busy={loading}>
        <caption class="sr-only">Plans</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">Windows</th><th scope="col">Quotas</th><th scope="col">Field limits</th><th scope="col" class="num">Max operation cost</th><th scope="col">Created</th><th scope="col">Actions</th></tr></thead>
        <tbody>
          {data?.plans.edges.map(({ node: p }: { node: Plan }) => (
            <tr>
              <th scope="row">{p.name}</th>
              <td>{p.budgets.map((b) => <div>{compact(b.points)} / {duration(b.duration)}</div>)}{p.budgets.length === 0 && '—'}</td>
              <td>{p.quotas.map((q) => <div>{compact(q.points)} / UTC {q.period.toLowerCase()}</div>)}{p.quotas.length === 0 && '—'}</td>
              <td>{p.limits.map((l) => <div><code>{l.coordinate}</code> {l.limit} / {duration(l.duration)}</div>)}{p.limits.length === 0 && '—'}</td>
              <td class="num">{p.maxOperationCost ?? '—'}</td>
              <td><Time value={p.createdAt} /></td>
              <td><button type="button" onClick={() => (setSaved(undefined), setEditing(p))} aria-label={`Edit plan ${p.name}`}>Edit</button></td>
            </tr>
          ))}
          {data && data.plans.edges.length === 0 && <tr><td colSpan={7}>No plans yet.</td></tr>}
        </tbody>
      </table>
      <Pager pages={pages} pageInfo={data?.plans.pageInfo} total={data?.plans.totalCount} />
    </>
  );
}
