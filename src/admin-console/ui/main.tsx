import { render } from 'preact';
import { useEffect, useRef, useState } from 'preact/hooks';
import 'uplot/dist/uPlot.min.css';
import './styles.css';
import { ApiError, gql, session } from './api';
import { Field, Problem } from './widgets';
import { Overview } from './overview';
import { Consumers } from './consumers';
import { ConsumerPage } from './consumer';
import { Plans } from './plans';
import { Keys } from './keys';
import { Audit } from './audit';

type Me = { id: string; name: string; scopes: string[] };

const SCREENS: { path: string; title: string }[] = [
  { path: 'overview', title: 'Overview' },
  { path: 'consumers', title: 'Consumers' },
  { path: 'plans', title: 'Plans' },
  { path: 'keys', title: 'Keys' },
  { path: 'audit', title: 'Audit log' },
];

/** #/consumers/abc → ['consumers', 'abc']. */
const route = () => location.hash.replace(/^#\/?/, '').split('/').filter(Boolean);

function SignIn({ onSignedIn }: { onSignedIn: (me: Me) => void }) {
  const [error, setError] = useState<string>();
  const [busy, setBusy] = useState(false);
  const input = useRef<HTMLInputElement>(null);
  useEffect(() => input.current?.focus(), []);
  const submit = async (event: Event) => {
    event.preventDefault();
    const secret = input.current!.value.trim();
    if (!secret) return setError('Paste an admin key.');
    setBusy(true);
    session.signIn(secret);
    try {
      const { me } = await gql<{ me: Me }>('query ConsoleSignIn { me { id name scopes } }');
      if (!me.scopes.includes('admin')) {
        session.signOut();
        setError(`The key "${me.name}" has no admin scope: the console needs a key with the admin scope.`);
      } else {
        input.current!.value = '';
        onSignedIn(me);
      }
    } catch (e) {
      session.signOut();
      setError(e instanceof ApiError && e.status === 401 ? 'This key is not valid (unknown, revoked or expired, or not allowed from here).' : (e as Error).message);
    } finally {
      setBusy(false);
    }
  };
  return (
    <main class="sign-in">
      <h1>Tollgate admin console</h1>
      <form onSubmit={submit}>
        <Field label="Admin key" hint="Kept in this tab's memory only: closing or reloading the tab signs out.">
          <input ref={input} type="password" name="key" autocomplete="off" spellcheck={false} required />
        </Field>
        <button type="submit" disabled={busy}>Sign in</button>
        <Problem message={error} />
      </form>
    </main>
  );
}

function Shell({ me, onSignOut }: { me: Me; onSignOut: () => void }) {
  const [path, setPath] = useState(route());
  useEffect(() => {
    const onHash = () => setPath(route());
    addEventListener('hashchange', onHash);
    return () => removeEventListener('hashchange', onHash);
  }, []);
  const [screen = 'overview', id] = path;
  const main = useRef<HTMLElement>(null);
  // A new screen: move focus to its heading, so keyboard and screen-reader users start there.
  useEffect(() => main.current?.querySelector<HTMLElement>('h1')?.focus(), [screen, id]);
  return (
    <div class="shell">
      <header>
        <a class="skip" href="#main" onClick={(e) => (e.preventDefault(), main.current?.querySelector<HTMLElement>('h1')?.focus())}>Skip to content</a>
        <span class="brand">Tollgate</span>
        <nav aria-label="Screens">
          {SCREENS.map((s) => (
            <a href={`#/${s.path}`} aria-current={screen === s.path ? 'page' : undefined}>{s.title}</a>
          ))}
        </nav>
        <span class="who">Signed in with <strong>{me.name}</strong></span>
        <button type="button" onClick={onSignOut}>Sign out</button>
      </header>
      <main id="main" ref={main}>
        {screen === 'consumers' && id ? <ConsumerPage key={id} id={id} /> :
          screen === 'consumers' ? <Consumers /> :
          screen === 'plans' ? <Plans /> :
          screen === 'keys' ? <Keys /> :
          screen === 'audit' ? <Audit /> :
          <Overview />}
      </main>
    </div>
  );
}

function App() {
  const [me, setMe] = useState<Me | null>(null);
  const [notice, setNotice] = useState<string>();
  // A 401 after signing in (the key was revoked or expired): back to the sign-in form.
  // (While signing in, the form says what went wrong itself.)
  const signedIn = useRef(false);
  signedIn.current = me !== null;
  useEffect(() => session.onSignOut((reason) => signedIn.current && (setNotice(reason), setMe(null))), []);
  if (!me) {
    return (
      <>
        {notice && <p class="notice" role="status">{notice}</p>}
        <SignIn onSignedIn={(m) => (setNotice(undefined), setMe(m))} />
      </>
    );
  }
  return <Shell me={me} onSignOut={() => session.signOut()} />;
}

render(<App />, document.getElementById('app')!);
