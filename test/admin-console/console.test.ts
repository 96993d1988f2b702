import { existsSync } from 'node:fs';
import { CHROMIUM, openBrowser, type TestBrowser } from '../support/browser';
import { useTestServer } from '../support/harness';

// The admin console in a real Chromium (Debian's), against a real server: everything it does goes
// through the public admin GraphQL API. Steps run in order on one page, signed in once.
const run = existsSync(CHROMIUM) ? describe : describe.skip;

run('admin console in Chromium', () => {
  const server = useTestServer({ env: { USAGE_FLUSH_SECONDS: '1' } });
  let browser: TestBrowser;
  /** Console errors the steps expect (a 401 the browser reports on its own), taken off the list. */
  const expected: RegExp[] = [];

  beforeAll(async () => {
    browser = await openBrowser();
  });
  afterAll(async () => {
    await browser?.close();
  });
  afterEach(() => {
    // Nothing left for another origin, and no console error the step did not expect.
    const origin = new URL(server.t.url).origin;
    expect(browser.requests.filter((url) => new URL(url).origin !== origin)).toEqual([]);
    expect(browser.errors.filter((message) => !expected.some((e) => e.test(message)))).toEqual([]);
    browser.errors.length = 0;
    expected.length = 0;
  });

  const page = () => browser.page;
  const use = (secret: string) => server.t.gql('query { stations(first: 3) { edges { node { id } } } }', {}, secret);

  test('an unknown key gets the 401 message, a key without the admin scope a refusal, an admin key the console', async () => {
    await page().goto(`${server.t.url}/admin`);
    await page().getByLabel('Admin key').fill('tg_nope_000000000000000000000000');
    expected.push(/401/);
    await page().getByRole('button', { name: 'Sign in' }).click();
    await page().getByRole('alert').filter({ hasText: 'This key is not valid' }).waitFor();

    const reader = await server.t.createKey({ name: 'reader', scopes: ['read'] });
    await page().getByLabel('Admin key').fill(reader.secret);
    await page().getByRole('button', { name: 'Sign in' }).click();
    await page().getByRole('alert').filter({ hasText: 'The key "reader" has no admin scope' }).waitFor();

    await page().getByLabel('Admin key').fill(server.t.adminKey);
    await page().getByRole('button', { name: 'Sign in' }).click();
    await page().getByRole('navigation', { name: 'Screens' }).waitFor();
    // Held in memory only: nothing in cookies or storage.
    expect(await browser.context.cookies()).toEqual([]);
    expect(await page().evaluate('localStorage.length + sessionStorage.length')).toBe(0);
  });

  let keyId: string;
  let secret: string;
  test('creates a key: its secret is shown once and works against /graphql', async () => {
    await page().getByRole('link', { name: 'Keys' }).click();
    await page().getByRole('button', { name: 'New key' }).click();
    await page().getByLabel('Name').fill('console key');
    await page().getByLabel('Scopes').fill('read');
    await page().getByRole('button', { name: 'Create key' }).click();
    const shown = page().locator('[data-secret]');
    secret = (await shown.textContent())!;
    expect(secret).toMatch(/^\S{20,}$/);
    await page().getByText('It is shown once').waitFor();
    expect((await use(secret)).status).toBe(200);

    await page().getByRole('button', { name: 'I have stored it' }).click();
    await shown.waitFor({ state: 'detached' });
    expect(await page().content()).not.toContain(secret);
    const row = page().getByRole('row').filter({ hasText: 'console key' });
    await row.getByText('active').waitFor();
    keyId = (await row.getAttribute('data-key-id'))!;
    expect(keyId).toBeTruthy();
  });
});
