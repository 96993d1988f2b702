import { useEffect, useRef, useState } from 'preact/hooks';
import { gql } from './api';
import { fromLocalInput, list, toLocalInput } from './format';
import { Choices, Field, Pager, Problem, Time, usePages, useQuery } from './widgets';

export type KeyNode = {
  id: string; name: string; start: string; scopes: string[]; createdAt: string; expiresAt: string | null; revokedAt: string | null;
  lastUsedAt: string | null; previousSecretValidUntil: string | null; rotationDueAt: string | null;
  consumer: { id: string; name: string } | null; allowedIps: string[]; allowedOrigins: string[];
};

export const KEY_FIELDS = 'id name start scopes createdAt expiresAt revokedAt lastUsedAt previousSecretValidUntil rotationDueAt consumer { id name } allowedIps allowedOrigins';
const SOON_MS = 7 * 86_400_000;

/** revoked, expired, expiring soon (7 days), rotation due, or active. */
export function keyStatus(key: KeyNode, now = Date.now()): { label: string; tone: string } {
  if (key.revokedAt) return { label: 'revoked', tone: 'bad' };
  if (key.expiresAt && Date.parse(key.expiresAt) <= now) return { label: 'expired', tone: 'bad' };
  if (key.expiresAt && Date.parse(key.expiresAt) - now < SOON_MS) return { label: 'expiring soon', tone: 'warn' };
  if (key.rotationDueAt && Date.parse(key.rotationDueAt) <= now) return { label: 'rotation due', tone: 'warn' };
  return { label: 'active', tone: 'good' };
}

/** A new secret: shown here once, with a copy button; gone from the page when dismissed. */
export function SecretOnce({ secret, title, note, onDone }: { secret: string; title: string; note?: string; onDone: () => void }) {
  const [copied, setCopied] = useState<string>();
  const code = useRef<HTMLElement>(null);
  const copyButton = useRef<HTMLButtonElement>(null);
  useEffect(() => copyButton.current?.focus(), [secret]);
  const copy = async () => {
    try {
      await navigator.clipboard.writeText(secret);
      setCopied('Copied.');
    } catch {
      // No clipboard permission: select it, so Ctrl+C copies it.
      getSelection()?.selectAllChildren(code.current!);
      setCopied('Selected: press Ctrl+C (⌘C) to copy.');
    }
  };
  return (
    <section class="secret" aria-labelledby="secret-title" role="region">
      <h2 id="secret-title">{title}</h2>
      <p class="warning"><strong>Copy this secret now.</strong> It is shown once: Tollgate keeps only its hash and cannot show it again.</p>
      <code ref={code} data-secret>{secret}</code>
      <div class="row">
        <button type="button" ref={copyButton} onClick={copy}>Copy secret</button>
        <button type="button" onClick={onDone}>I have stored it</button>
        <span role="status">{copied}</span>
      </div>
      {note && <p>{note}</p>}
    </section>
  );
}

/** Create or edit a key: name, consumer, scopes, expiry, IP allowlist, allowed origins. */
function KeyForm({ existing, onSaved, onCancel }: { existing?: KeyNode; onSaved: (result: { secret?: string; key: KeyNode }) => void; onCancel: () => void }) {
  const [error, setError] = useState<string>();
  const shownExpiry = existing?.expiresAt ? toLocalInput(existing.expiresAt) : '';
  const submit = async (event: Event) => {
    event.preventDefault();
    const form = new FormData(event.target as HTMLFormElement);
    const text = (name: string) => String(form.get(name) ?? '').trim();
    const expires = text('expiresAt');
    const consumerId = text('consumerId');
    const input = {
      name: text('name'),
      scopes: list(text('scopes')),
      // Consumer and expiry are sent only when changed: an edit of anything else leaves them be (the
      // field has minutes, the expiry may have seconds).
      ...(consumerId !== (existing?.consumer?.id ?? '') ? { consumerId: consumerId || null } : {}),
      ...(expires !== shownExpiry ? { expiresAt: fromLocalInput(expires)?.toISOString() ?? null } : {}),
      allowedIps: list(text('allowedIps')),
      allowedOrigins: list(text('allowedOrigins')),
    };
    try {
      if (existing) {
        const { updateApiKey } = await gql(`mutation ConsoleUpdateKey($id: ID!, $input: UpdateApiKeyInput!) { updateApiKey(id: $id, input: $input) { ${KEY_FIELDS} } }`, { id: existing.id, input });
        onSaved({ key: updateApiKey });
      } else {
        const { createApiKey } = await gql(`mutation ConsoleCreateKey($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { ${KEY_FIELDS} } } }`, { input });
        onSaved({ secret: createApiKey.secret, key: createApiKey.apiKey });
      }
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <form class="panel" onSubmit={submit} aria-label={existing ? `Edit key ${existing.name}` : 'New key'}>
      <h2>{existing ? `Edit ${existing.name}` : 'New key'}</h2>
      <div class="grid">
        <Field label="Name"><input name="name" required defaultValue={existing?.name} /></Field>
        <Field label="Consumer" hint="Whose budgets the key spends.">
          <Choices name="consumerId" query="query ConsoleConsumerChoices { consumers(first: 100) { edges { node { id name } } } }" none="— none —" current={existing?.consumer} />
        </Field>
        <Field label="Scopes" hint="Comma-separated, e.g. read, write."><input name="scopes" defaultValue={existing?.scopes.join(', ') ?? 'read'} /></Field>
        <Field label="Expires" hint="Your time zone; empty: never."><input name="expiresAt" type="datetime-local" defaultValue={shownExpiry} /></Field>
        <Field label="IP allowlist" hint="One CIDR range or address per line; empty: any."><textarea name="allowedIps" rows={2} defaultValue={existing?.allowedIps.join('\n')} /></Field>
        <Field label="Allowed origins" hint="One browser origin per line; empty: any."><textarea name="allowedOrigins" rows={2} defaultValue={existing?.allowedOrigins.join('\n')} /></Field>
      </div>
      <Problem message={error} />
      <div class="row">
        <button type="submit" class="primary">{existing ? 'Save key' : 'Create key'}</button>
        <button type="button" onClick={onCancel}>Cancel</button>
      </div>
    </form>
  );
}

const GRACE_CHOICES: [number, string][] = [[0, 'none: the old secret stops now'], [3600, '1 hour'], [86_400, '1 day'], [7 * 86_400, '7 days']];

/** One key's row actions: edit, rotate (with a grace period), revoke (after a confirmation). */
function KeyActions({ keyNode, onChanged, onSecret, onEdit }: { keyNode: KeyNode; onChanged: () => void; onSecret: (secret: string, title: string, note?: string) => void; onEdit: () => void }) {
  const [mode, setMode] = useState<'rotate' | 'revoke' | null>(null);
  const [grace, setGrace] = useState(3600);
  const [error, setError] = useState<string>();
  const panel = useRef<HTMLDivElement>(null);
  // Keyboard users land in the panel that opened (for a revocation, on Cancel, not on the
  // destructive button); Escape closes it, and focus goes back to the row's buttons.
  const opened = useRef(false);
  useEffect(() => {
    if (mode === null && !opened.current) return;
    opened.current = mode !== null;
    panel.current?.querySelector<HTMLElement>(mode === null ? 'button' : '[data-autofocus]')?.focus();
  }, [mode]);
  if (keyNode.revokedAt) return <span class="muted">—</span>;
  const rotate = async () => {
    try {
      const { rotateApiKey } = await gql(`mutation ConsoleRotateKey($id: ID!, $grace: Int!) { rotateApiKey(id: $id, gracePeriodSeconds: $grace) { secret apiKey { previousSecretValidUntil } } }`, { id: keyNode.id, grace });
      const until = rotateApiKey.apiKey.previousSecretValidUntil;
      opened.current = false; // the new secret takes the focus, not this row
      setMode(null);
      onSecret(rotateApiKey.secret, `New secret for ${keyNode.name}`, until ? `The old secret keeps working until ${new Date(until).toLocaleString()} (${new Date(until).toISOString()}).` : 'The old secret has stopped working.');
      onChanged();
    } catch (e) {
      setError((e as Error).message);
    }
  };
  const revoke = async () => {
    try {
      await gql('mutation ConsoleRevokeKey($id: ID!) { revokeApiKey(id: $id) { id revokedAt } }', { id: keyNode.id });
      setMode(null);
      onChanged();
    } catch (e) {
      setError((e as Error).message);
    }
  };
  return (
    <div class="actions" ref={panel} onKeyDown={(e) => e.key === 'Escape' && setMode(null)}>
      {mode === null && (
        <>
          <button type="button" onClick={onEdit} aria-label={`Edit ${keyNode.name}`}>Edit</button>
          <button type="button" onClick={() => setMode('rotate')} aria-label={`Rotate ${keyNode.name}`}>Rotate</button>
          <button type="button" class="danger" onClick={() => setMode('revoke')} aria-label={`Revoke ${keyNode.name}`}>Revoke</button>
        </>
      )}
      {mode === 'rotate' && (
        <div role="group" aria-label={`Rotate ${keyNode.name}`}>
          <Field label="Old secret keeps working for">
            <select data-autofocus value={grace} onChange={(e) => setGrace(Number((e.target as HTMLSelectElement).value))}>
              {GRACE_CHOICES.map(([s, text]) => <option value={s}>{text}</option>)}
            </select>
          </Field>
          <button type="button" class="primary" onClick={rotate}>Rotate now</button>
          <button type="button" onClick={() => setMode(null)}>Cancel</button>
        </div>
      )}
      {mode === 'revoke' && (
        <div role="alertdialog" aria-label={`Revoke ${keyNode.name}?`}>
          <p>Revoke <strong>{keyNode.name}</strong>? It gets 401 everywhere within a second. This cannot be undone.</p>
          <button type="button" class="danger" onClick={revoke}>Yes, revoke</button>
          <button type="button" data-autofocus onClick={() => setMode(null)}>Cancel</button>
        </div>
      )}
      <Problem message={error} />
    </div>
  );
}

/** Keys: list with status, scopes, consumer and last use; create, edit, rotate, revoke. */
export function Keys() {
  const pages = usePages();
  const [includeRevoked, setIncludeRevoked] = useState(false);
  const [{ data, error, loading }, reload] = useQuery(
    `query ConsoleKeys($after: String, $includeRevoked: Boolean) { apiKeys(first: 25, after: $after, includeRevoked: $includeRevoked) { totalCount pageInfo { hasNextPage endCursor } edges { node { ${KEY_FIELDS} } } } }`,
    { after: pages.after, includeRevoked },
    [pages.after, includeRevoked],
  );
  const [editing, setEditing] = useState<KeyNode | 'new' | null>(null);
  const [secret, setSecret] = useState<{ secret: string; title: string; note?: string } | null>(null);
  const keys: KeyNode[] = data?.apiKeys.edges.map((e: { node: KeyNode }) => e.node) ?? [];
  return (
    <>
      <h1 tabIndex={-1}>Keys</h1>
      {secret && <SecretOnce {...secret} onDone={() => setSecret(null)} />}
      {editing ? (
        <KeyForm
          key={editing === 'new' ? 'new' : editing.id}
          existing={editing === 'new' ? undefined : editing}
          onCancel={() => setEditing(null)}
          onSaved={(result) => {
            setEditing(null);
            if (result.secret) setSecret({ secret: result.secret, title: `Secret of ${result.key.name}` });
            reload();
          }}
        />
      ) : (
        <div class="row">
          <button type="button" class="primary" onClick={() => (setSecret(null), setEditing('new'))}>New key</button>
          <label class="inline"><input type="checkbox" checked={includeRevoked} onChange={(e) => (pages.reset(), setIncludeRevoked((e.target as HTMLInputElement).checked))} /> Show revoked keys</label>
        </div>
      )}
      <Problem message={error} />
      <table aria-busy={loading}>
        <caption class="sr-only">API keys</caption>
        <thead><tr><th scope="col">Name</th><th scope="col">Starts with</th><th scope="col">Status</th><th scope="col">Scopes</th><th scope="col">Consumer</th><th scope="col">Last used</th><th scope="col">Expires</th><th scope="col">Actions</th></tr></thead>
        <tbody>
          {keys.map((k) => {
            const status = keyStatus(k);
            return (
              <tr data-key-id={k.id}>
                <th scope="row">{k.name}</th>
                <td><code>{k.start}…</code></td>
                <td><span class={`badge ${status.tone}`}>{status.label}</span>{k.previousSecretValidUntil && <small class="block">old secret until <Time value={k.previousSecretValidUntil} /></small>}</td>
                <td>{k.scopes.join(', ') || '—'}</td>
                <td>{k.consumer ? <a href={`#/consumers/${k.consumer.id}`}>{k.consumer.name}</a> : '—'}</td>
                <td><Time value={k.lastUsedAt} empty="never" /></td>
                <td><Time value={k.expiresAt} empty="never" /></td>
                <td><KeyActions keyNode={k} onChanged={reload} onEdit={() => (setSecret(null), setEditing(k))} onSecret={(s, title, note) => setSecret({ secret: s, title, note })} /></td>
              </tr>
            );
          })}
          {!loading && keys.length === 0 && <tr><td colSpan={8}>No keys.</td></tr>}
        </tbody>
      </table>
      <Pager pages={pages} pageInfo={data?.apiKeys.pageInfo} total={data?.apiKeys.totalCount} />
    </>
  );
}
