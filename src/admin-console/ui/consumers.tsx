import { useState } from 'preact/hooks';
import { gql } from './api';
import { Choices, Field, Pager, Problem, Time, usePages, useQuery } from './widgets';

/** Plan choices (the first 100 plans, and the current one) for the form field planId. */
export const PlanSelect = (props: { current?: { id: string; name: string } | null }) => (
  <Choices name="planId" query="query ConsolePlanChoices { plans(first: 100) { edges { node { id name } } } }" none="— no plan —" {...props} />
);

function NewConsumer({ onDone }: { onDone: (id?: string) => void }) {
  const [error, setError] = useState<string>();
  const submit = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.target as HTMLFormElement);
    const input = { name: String(form.get('name')).trim(), externalId: String(form.get('externalId')).trim() || null, planId: String(form.get('planId')) || null };
    try {
      const { createConsumer } = await gql('mutation ConsoleCreateConsumer($input: CreateConsumerInput!) { createConsumer(input: $input) { id } }', { input });
      onDone(createConsumer.id);
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <form class="panel" onSubmit={submit} aria-label="New consumer">
      <h2>New consumer</h2>
      <div class="grid">
        <Field label="Name"><input name="name" required /></Field>
        <Field label="External id" hint="Your own customer id (unique); optional."><input name="externalId" /></Field>
        <Field label="Plan"><PlanSelect /></Field>
      </div>
      <Problem message={error} />
      <div class="row">
        <button type="submit" class="primary">Create consumer</button>
        <button type="button" onClick={() => onDone()}>Cancel</button>
      </div>
    </form>
  );
}

/** Consumers: search by name or external id, pages of 25, plan and keys; create one. */
export function Consumers() {
  const pages = usePages();
  const [search, setSearch] = useState('');
  const [creating, setCreating] = useState(false);
  const [{ data, error, loading }] = useQuery(
    `query ConsoleConsumers($after: String, $search: String) { consumers(first: 25, after: $after, search: $search) {
      totalCount pageInfo { hasNextPage endCursor } edges { node { id name externalId createdAt plan { id name } keys(first: 1) { totalCount } } } } }`,
    { after: pages.after, search: search || null },
    [pages.after, search],
  );
  const submit = (event: Event) => {
    event.preventDefault();
    pages.reset();
    setSearch(String(new FormData(event.target as HTMLFormElement).get('search')).trim());
  };
  return (
    <>
      <h1 tabIndex={-1}>Consumers</h1>
      <form class="row" role="search" onSubmit={submit}>
        <label class="inline">Search <input type="search" name="search" placeholder="name or external id" /></label>
        <button type="submit">Search</button>
        {!creating && <button type="button" class="primary" onClick={() => setCreating(true)}>New consumer</button>}
      </form>
      {creating && <NewConsumer onDone={(id) => (setCreating(false), id && (location.hash = `#/consumers/${id}`))} />}
      <Problem message={error} />
      <table aria-busy={loading}>
        <caption class="sr-only">Consumers</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">External id</th><th scope="col">Plan</th><th scope="col" class="num">Live keys</th><th scope="col">Created</th></tr></thead>
        <tbody>
          {data?.consumers.edges.map(({ node: c }: any) => (
            <tr>
              <th scope="row"><a href={`#/consumers/${c.id}`}>{c.name}</a></th>
              <td>{c.externalId ?? '—'}</td>
              <td>{c.plan?.name ?? '—'}</td>
              <td class="num">{c.keys.totalCount}</td>
              <td><Time value={c.createdAt} /></td>
            </tr>
          ))}
          {data && data.consumers.edges.length === 0 && <tr><td colSpan={5}>{search ? `No consumer matches "${search}".` : 'No consumers yet.'}</td></tr>}
        </tbody>
      </table>
      <Pager pages={pages} pageInfo={data?.consumers.pageInfo} total={data?.consumers.totalCount} />
    </>
  );
}
