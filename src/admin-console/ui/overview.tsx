import { compact } from './format';
import { Problem, Time, useQuery } from './widgets';

type Totals = { operations: number; refused: number; points: number };

const OVERVIEW = `query ConsoleOverview($dayAgo: DateTime!, $monthAgo: DateTime!, $now: DateTime!) {
  day: usageTotals(from: $dayAgo, to: $now) { operations refused points }
  month: usageTotals(from: $monthAgo, to: $now) { operations refused points }
  top: usageTop(from: $monthAgo, to: $now, by: CONSUMER, first: 5) { consumer { id name plan { name } } points operations refused }
  failed: webhookDeliveries(first: 5, status: FAILED) { edges { node { id type attempts createdAt lastAttemptAt lastResult } } }
}`;

function Totals({ title, totals }: { title: string; totals?: Totals }) {
  return (
    <section class="card" aria-label={title}>
      <h2>{title}</h2>
      <dl class="totals">
        <div><dt>Operations</dt><dd class="big">{compact(totals && totals.operations + totals.refused)}</dd></div>
        <div><dt>Points</dt><dd class="big">{compact(totals?.points)}</dd></div>
        <div><dt>Refused</dt><dd class="big">{compact(totals?.refused)}</dd></div>
      </dl>
    </section>
  );
}

/** Overview: everyone's operations, points and refusals; the top consumers; failed webhooks. */
export function Overview() {
  const now = Date.now();
  const vars = { now: new Date(now).toISOString(), dayAgo: new Date(now - 86_400_000).toISOString(), monthAgo: new Date(now - 30 * 86_400_000).toISOString() };
  const [{ data, error }] = useQuery(OVERVIEW, vars, []);
  return (
    <>
      <h1 tabIndex={-1}>Overview</h1>
      <Problem message={error} />
      <div class="cards">
        <Totals title="Last 24 hours" totals={data?.day} />
        <Totals title="Last 30 days" totals={data?.month} />
      </div>
      <p class="muted">
        Operations made with a key, admitted or refused by a gate. A request refused before its key was known (no key, an unknown, revoked or expired one, one used from an address or origin
        it does not allow, or refused by the IP gate first) is not counted here: the metrics count it.
      </p>
      <h2>Top consumers by points, last 30 days</h2>
      <table>
        <thead><tr><th scope="col">Consumer</th><th scope="col">Plan</th><th scope="col" class="num">Points</th><th scope="col" class="num">Admitted</th><th scope="col" class="num">Refused</th></tr></thead>
        <tbody>
          {/* A deleted consumer's usage stays ranked (its rows keep its id): no consumer to name. */}
          {data?.top.map((r: any) => (
            <tr>
              <th scope="row">{r.consumer ? <a href={`#/consumers/${r.consumer.id}`}>{r.consumer.name}</a> : <span class="muted">(deleted consumer)</span>}</th>
              <td>{r.consumer?.plan?.name ?? '—'}</td>
              <td class="num">{compact(r.points)}</td><td class="num">{compact(r.operations)}</td><td class="num">{compact(r.refused)}</td>
            </tr>
          ))}
          {data && data.top.length === 0 && <tr><td colSpan={5}>No consumer spent anything in the last 30 days.</td></tr>}
        </tbody>
      </table>
      <h2>Webhook deliveries that failed</h2>
      <table>
        <thead><tr><th scope="col">Event</th><th scope="col">Created</th><th scope="col">Last attempt</th><th scope="col" class="num">Attempts</th><th scope="col">Last result</th></tr></thead>
        <tbody>
          {data?.failed.edges.map(({ node: d }: any) => (
            <tr><th scope="row">{d.type}</th><td><Time value={d.createdAt} /></td><td><Time value={d.lastAttemptAt} /></td><td class="num">{d.attempts}</td><td>{d.lastResult ?? '—'}</td></tr>
          ))}
          {data && data.failed.edges.length === 0 && <tr><td colSpan={5}>None failed.</td></tr>}
        </tbody>
      </table>
    </>
  );
}
