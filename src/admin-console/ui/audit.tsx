import { Pager, Problem, Time, usePages, useQuery } from './widgets';

type Event = { id: string; at: string; actorKeyId: string | null; action: string; targetKeyId: string | null; targetId: string | null; details: { before?: Record<string, unknown>; after?: Record<string, unknown> } };

const show = (value: unknown) => (value === undefined ? '—' : JSON.stringify(value));

/** What changed: one line per field, before → after (a creation has only an after). */
function Diff({ details }: { details: Event['details'] }) {
  const before = details.before ?? {};
  const after = details.after ?? {};
  const fields = [...new Set([...Object.keys(before), ...Object.keys(after)])];
  if (fields.length === 0) return <span class="muted">no field changed</span>;
  return (
    <dl class="diff">
      {fields.map((f) => (
        <div>
          <dt><code>{f}</code></dt>
          <dd>{f in before && <del aria-label="before">{show(before[f])}</del>}{f in before && ' → '}<ins aria-label="after">{show(after[f])}</ins></dd>
        </div>
      ))}
    </dl>
  );
}

/** Audit log: who (which admin key) did what to which key, consumer or plan, with the diff. Newest first. */
export function Audit() {
  const pages = usePages();
  const [{ data, error, loading }] = useQuery(
    `query ConsoleAudit($after: String) {
      auditEvents(first: 30, after: $after) { totalCount pageInfo { hasNextPage endCursor } edges { node { id at actorKeyId action targetKeyId targetId details } } }
      apiKeys(first: 100, includeRevoked: true) { edges { node { id name } } }
      consumers(first: 100) { edges { node { id name } } }
      plans(first: 100) { edges { node { id name } } }
    }`,
    { after: pages.after },
    [pages.after],
  );
  // Names for the ids an event holds (the first 100 of each kind; past that, a short id).
  const named = (connection?: { edges: { node: { id: string; name: string } }[] }) => new Map(connection?.edges.map(({ node }) => [node.id, node.name]) ?? []);
  const names = named(data?.apiKeys);
  const consumers = named(data?.consumers);
  const plans = named(data?.plans);
  const other = (e: Event, kind: Map<string, string>) => kind.get(e.targetId ?? '') ?? String(e.details.after?.name ?? e.targetId?.slice(0, 8));
  const keyName = (id: string | null) => (id === null ? 'command line' : names.get(id) ?? `key ${id.slice(0, 8)}`);
  return (
    <>
      <h1 tabIndex={-1}>Audit log</h1>
      <Problem message={error} />
      <table aria-busy={loading}>
        <caption class="sr-only">Audit events, newest first</caption>
        <thead><tr><th scope="col">When</th><th scope="col">Who</th><th scope="col">Action</th><th scope="col">Target</th><th scope="col">Changes</th></tr></thead>
        <tbody>
          {data?.auditEvents.edges.map(({ node: e }: { node: Event }) => (
            <tr data-action={e.action}>
              <td><Time value={e.at} /></td>
              <td>{keyName(e.actorKeyId)}</td>
              <th scope="row">{e.action}</th>
              <td>{e.targetKeyId ? keyName(e.targetKeyId) : e.action.startsWith('consumer.') ? <a href={`#/consumers/${e.targetId}`}>consumer {other(e, consumers)}</a> : `plan ${other(e, plans)}`}</td>
              <td><Diff details={e.details} /></td>
            </tr>
          ))}
          {data && data.auditEvents.edges.length === 0 && <tr><td colSpan={5}>Nothing yet.</td></tr>}
        </tbody>
      </table>
      <Pager pages={pages} pageInfo={data?.auditEvents.pageInfo} total={data?.auditEvents.totalCount} />
    </>
  );
}
