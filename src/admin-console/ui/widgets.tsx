import { cloneElement, type VNode } from 'preact';
import { useCallback, useEffect, useId, useState } from 'preact/hooks';
import { gql } from './api';
import { localDate, utcDate } from './format';

/** A date in the viewer's time zone; the exact UTC time on hover. */
export function Time({ value, empty = '—' }: { value: string | null | undefined; empty?: string }) {
  if (!value) return <span>{empty}</span>;
  return <time dateTime={value} title={utcDate(value)}>{localDate(value)}</time>;
}

type Loaded<T> = { data?: T; error?: string; loading: boolean };

/** Runs a query when `deps` change; `reload` runs it again. */
export function useQuery<T = any>(query: string, variables: Record<string, unknown>, deps: unknown[]): [Loaded<T>, () => void] {
  const [state, setState] = useState<Loaded<T>>({ loading: true });
  const [tick, setTick] = useState(0);
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    gql<T>(query, variables).then(
      (data) => live && setState({ data, loading: false }),
      (error: Error) => live && setState({ error: error.message, loading: false }),
    );
    return () => {
      live = false;
    };
  }, [...deps, tick]);
  return [state, useCallback(() => setTick((t) => t + 1), [])];
}

type Named = { id: string; name: string };

/**
 * A select of a connection's first 100 (`query` asks for `edges { node { id name } }`), "none"
 * first. The current choice is always there, selected: it may be past the first 100, and the
 * list may still be on its way when the form is sent.
 */
export function Choices({ query, none, current, ...rest }: { query: string; none: string; current?: Named | null; name: string }) {
  const [{ data }] = useQuery<Record<string, { edges: { node: Named }[] }>>(query, {}, []);
  const others = Object.values(data ?? {})[0]?.edges.map((e) => e.node).filter((n) => n.id !== current?.id) ?? [];
  return (
    <select {...rest}>
      <option value="">{none}</option>
      {current && <option value={current.id} selected>{current.name}</option>}
      {others.map((n) => <option value={n.id}>{n.name}</option>)}
    </select>
  );
}

export function Problem({ message }: { message?: string }) {
  return message ? <p class="problem" role="alert">{message}</p> : null;
}

/** A labelled control: the label names it (for/id) and the hint describes it (aria-describedby). */
export function Field({ label, hint, children }: { label: string; hint?: string; children: VNode<any> }) {
  const id = useId();
  return (
    <div class="field">
      <label for={id}>{label}</label>
      {cloneElement(children, { id, 'aria-describedby': hint ? `${id}-hint` : undefined })}
      {hint && <small id={`${id}-hint`}>{hint}</small>}
    </div>
  );
}

/** Previous / next over a Relay connection: a stack of the cursors seen. */
export function usePages() {
  const [cursors, setCursors] = useState<(string | null)[]>([null]);
  return { cursors, setCursors, after: cursors[cursors.length - 1], reset: () => setCursors([null]) };
}

export function Pager({ pages, pageInfo, total }: { pages: ReturnType<typeof usePages>; pageInfo?: { hasNextPage: boolean; endCursor: string | null }; total?: number }) {
  const { cursors, setCursors } = pages;
  return (
    <nav class="pager" aria-label="Pages">
      <button type="button" disabled={cursors.length < 2} onClick={() => setCursors(cursors.slice(0, -1))}>Previous</button>
      <span>Page {cursors.length}{total !== undefined ? ` · ${total} in all` : ''}</span>
      <button type="button" disabled={!pageInfo?.hasNextPage} onClick={() => pageInfo?.endCursor && setCursors([...cursors, pageInfo.endCursor])}>Next</button>
    </nav>
  );
}
