import { existsSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import type { Route } from 'playwright-core';
import { CHROMIUM, openBrowser, type TestBrowser } from '../support/browser';
import { useTestServer } from '../support/harness';
import { describeIf } from '../support/services';
import { until } from '../support/wait';

// The admin console in a real Chromium (Debian's), against a real server: everything it does goes
// through the public admin GraphQL API, and what it does is checked from outside (the key it made
// answers /graphql, the plan it changed refuses, the key it revoked gets 401). Steps run in order
// on one page, signed in once. SCREENSHOTS=<folder> (npm run screenshots) also saves the README's
// pictures of the main screens from these same steps. Without Chromium the suite is a recorded skip
// (and, with CI=true, a failure).
/** Form controls and buttons with no accessible name: no label, no aria-label, no text. */
const UNNAMED_CONTROLS = `[...document.querySelectorAll('input, select, textarea, button')]
  .filter((el) => !(el.labels && el.labels.length) && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby') && !(el.tagName === 'BUTTON' && el.textContent.trim()))
  .map((el) => el.outerHTML.slice(0, 120))`;
const SCREENSHOTS = process.env.SCREENSHOTS && path.resolve(process.env.SCREENSHOTS);

describeIf(existsSync(CHROMIUM), `Chromium (${CHROMIUM}, Debian's chromium package)`, 'admin console in Chromium', () => {
  jest.setTimeout(60_000);
  const server = useTestServer({ env: { USAGE_FLUSH_SECONDS: '1' } });
  let browser: TestBrowser;
  /** Console errors the step expects (a 401 the browser reports on its own), taken off the list. */
  const expected: RegExp[] = [];

  beforeAll(async () => {
    browser = await openBrowser();
    if (SCREENSHOTS) mkdirSync(SCREENSHOTS, { recursive: true });
  });
  afterAll(async () => {
    await browser?.close();
  });
  afterEach(async () => {
    // Every control on the screen the step ended on has a name (a label, or a button's text).
    expect(await page().evaluate(UNNAMED_CONTROLS)).toEqual([]);
    // Nothing left for another origin, and no console error the step did not expect.
    const origin = new URL(server.t.url).origin;
    expect(browser.requests.filter((url) => !url.startsWith('data:') && new URL(url).origin !== origin)).toEqual([]);
    expect(browser.errors.filter((message) => !expected.some((e) => e.test(message)))).toEqual([]);
    browser.errors.length = 0;
    expected.length = 0;
  });

  const page = () => browser.page;
  const STATIONS = 'query { stations(first: 3) { edges { node { id } } } }';
  const use = (secret: string) => server.t.gql(STATIONS, {}, secret);
  const screen = async (name: string) => {
    await page().getByRole('navigation', { name: 'Screens' }).getByRole('link', { name, exact: true }).click();
    await page().getByRole('heading', { level: 1, name, exact: true }).waitFor();
    // Keyboard users start on the new screen's heading.
    await until(async () => (await page().evaluate('document.activeElement && document.activeElement.textContent')) === name, 5_000);
  };
  const shot = async (name: string) => {
    if (!SCREENSHOTS) return;
    await page().screenshot({ path: path.join(SCREENSHOTS, `${name}.png`) });
  };

  test('an unknown key gets the 401 message, a key without the admin scope a refusal, an admin key the console (keyboard only)', async () => {
    await page().goto(`${server.t.url}/admin`);
    await shot('sign-in');
    // The key field has the focus; Enter signs in.
    await page().keyboard.type('tg_nope_000000000000000000000000');
    expected.push(/status of 401/);
    await page().keyboard.press('Enter');
    await page().getByRole('alert').filter({ hasText: 'This key is not valid' }).waitFor();

    const reader = await server.t.createKey({ name: 'reader', scopes: ['read'] });
    await page().getByLabel('Admin key').fill(reader.secret);
    await page().keyboard.press('Enter');
    await page().getByRole('alert').filter({ hasText: 'The key "reader" has no admin scope' }).waitFor();

    await page().getByLabel('Admin key').fill(server.t.adminKey);
    await page().keyboard.press('Enter');
    await page().getByRole('navigation', { name: 'Screens' }).waitFor();
    await page().getByRole('heading', { level: 1, name: 'Overview' }).waitFor();
    // Held in memory only: nothing in cookies or storage.
    expect(await browser.context.cookies()).toEqual([]);
    expect(await page().evaluate('localStorage.length + sessionStorage.length')).toBe(0);
  });

  test('creates a plan with a window, and a consumer on it; finds the consumer by search', async () => {
    await screen('Plans');
    await page().getByRole('button', { name: 'New plan' }).click();
    await page().getByLabel('Name', { exact: true }).fill('Starter');
    await page().getByLabel('Points').first().fill('1000');
    await page().getByLabel('per seconds').first().fill('3600');
    await page().getByRole('button', { name: 'Create plan' }).click();
    await page().getByRole('status').filter({ hasText: 'Plan created.' }).waitFor();
    await page().getByRole('row').filter({ hasText: 'Starter' }).getByText('1K / 1 hour').waitFor();

    await screen('Consumers');
    await page().getByRole('button', { name: 'New consumer' }).click();
    await page().getByLabel('Name').fill('Acme Corp');
    await page().getByLabel('External id').fill('cus_acme');
    await page().getByLabel('Plan').selectOption({ label: 'Starter' });
    await page().getByRole('button', { name: 'Create consumer' }).click();
    await page().getByRole('heading', { level: 1, name: 'Acme Corp' }).waitFor();
    expect(await page().locator('[data-plan]').textContent()).toBe('Starter');

    for (const name of ['Globex', 'Initech']) await server.t.gql('mutation($input: CreateConsumerInput!) { createConsumer(input: $input) { id } }', { input: { name } });
    await screen('Consumers');
    await page().getByRole('searchbox', { name: 'Search' }).fill('cus_ac');
    await page().getByRole('button', { name: 'Search' }).click();
    await until(async () => (await page().getByRole('row').count()) === 2); // the header and Acme
    await page().getByRole('row').filter({ hasText: 'Acme Corp' }).getByText('Starter').waitFor();
    await page().getByRole('searchbox', { name: 'Search' }).fill('');
    await page().getByRole('button', { name: 'Search' }).click();
    await until(async () => (await page().getByRole('row').count()) === 4);
    await shot('consumers');
  });

  let keyId: string;
  let secret: string;
  test('creates a key for the consumer: its secret is shown once and works against /graphql', async () => {
    await screen('Keys');
    await page().getByRole('button', { name: 'New key' }).click();
    await page().getByLabel('Name').fill('acme production');
    await page().getByLabel('Consumer').selectOption({ label: 'Acme Corp' });
    await page().getByLabel('Scopes').fill('read');
    await page().getByRole('button', { name: 'Create key' }).click();
    const shown = page().locator('[data-secret]');
    secret = (await shown.textContent())!;
    expect(secret).toMatch(/^\S{20,}$/);
    await page().getByText('It is shown once').waitFor();
    await shot('key-created');
    expect((await use(secret)).status).toBe(200);

    await page().getByRole('button', { name: 'I have stored it' }).click();
    await shown.waitFor({ state: 'detached' });
    expect(await page().content()).not.toContain(secret);
    const row = page().getByRole('row').filter({ hasText: 'acme production' });
    await row.getByText('active').waitFor();
    await row.getByRole('link', { name: 'Acme Corp' }).waitFor();
    keyId = (await row.getAttribute('data-key-id'))!;
    expect(keyId).toBeTruthy();
  });

  test("the consumer's usage chart shows the requests made with its key, by field, and what is left of its window", async () => {
    for (let i = 0; i < 4; i++) expect((await use(secret)).status).toBe(200); // 5 in all with the one above
    await screen('Consumers');
    await page().getByRole('link', { name: 'Acme Corp' }).click();
    await page().getByRole('heading', { level: 1, name: 'Acme Corp' }).waitFor();
    await page().getByLabel('Range', { exact: true }).selectOption({ label: 'Last hour' });
    expect(await page().getByLabel('Granularity', { exact: true }).inputValue()).toBe('MINUTE');
    // Counts are written every USAGE_FLUSH_SECONDS (1 s here): refresh until they are in.
    await until(async () => {
      await page().getByRole('button', { name: 'Refresh' }).click();
      return (await page().locator('[data-usage][aria-busy="false"] [data-total="operations"]').textContent({ timeout: 2000 }).catch(() => '')) === '5';
    }, 15_000);
    expect(await page().locator('.chart canvas').count()).toBe(1);
    const points = Number(await page().locator('[data-total="points"]').textContent());
    expect(points).toBeGreaterThan(0);
    await page().getByRole('region', { name: 'Per field' }).getByRole('row').filter({ hasText: 'Query.stations' }).getByRole('cell').first().filter({ hasText: '5' }).waitFor();
    // The plan's window as the gate counts it: 1000 points an hour, the points above spent.
    const window = page().getByRole('row').filter({ hasText: '1K points per 1 hour' });
    await window.getByRole('cell').nth(0).filter({ hasText: String(points) }).waitFor();
    await window.getByRole('cell').nth(1).filter({ hasText: `${1000 - points} (` }).waitFor();
    await shot('consumer');
  });

  test('a plan edited on the page is live: the consumer\'s key is refused under the new window', async () => {
    await screen('Plans');
    await page().getByRole('button', { name: 'Edit plan Starter' }).click();
    await page().getByRole('note').filter({ hasText: 'Changes are live.' }).waitFor();
    await page().getByLabel('Points').first().fill('20');
    await page().getByRole('button', { name: 'Add quota' }).click();
    await page().getByLabel('Points').nth(1).fill('100000');
    await shot('plan-edit');
    await page().getByRole('button', { name: 'Save plan' }).click();
    await page().getByRole('status').filter({ hasText: 'live within a second' }).waitFor();
    await page().getByRole('row').filter({ hasText: 'Starter' }).getByText('20 / 1 hour').waitFor();
    await page().getByRole('row').filter({ hasText: 'Starter' }).getByText('100K / UTC month').waitFor();
    // An operation costs 7 points: within three, the key is over the new 20-point window.
    await until(async () => (await use(secret)).status === 429, 5_000);
  });

  let rotated: string;
  test('rotates with no grace period (the old secret gets 401 at once), then revokes after a confirmation (the new one gets 401)', async () => {
    await server.t.gql('mutation($id: ID!) { updatePlan(id: $id, input: { budgets: [{ points: 1000, duration: 3600 }] }) { id } }', {
      id: (await server.t.gql('{ plans { edges { node { id } } } }')).body.data.plans.edges[0].node.id,
    });
    await screen('Keys');
    const row = page().locator(`tr[data-key-id="${keyId}"]`);
    await row.getByRole('button', { name: 'Rotate acme production' }).click();
    await row.getByLabel('Old secret keeps working for').selectOption('0');
    await row.getByRole('button', { name: 'Rotate now' }).click();
    rotated = (await page().locator('[data-secret]').textContent())!;
    // The new secret has the focus: its copy button.
    await until(async () => (await page().evaluate('document.activeElement.textContent')) === 'Copy secret', 5_000);
    await page().getByText('The old secret has stopped working.').waitFor();
    expect(rotated).not.toBe(secret);
    await until(async () => (await use(secret)).status === 401, 5_000);
    expect((await use(rotated)).status).toBe(200);
    await page().getByRole('button', { name: 'I have stored it' }).click();

    // A grace period shows when the old secret stops.
    const other = await server.t.createKey({ name: 'partner' });
    await page().getByLabel('Show revoked keys').check();
    const partner = page().locator(`tr[data-key-id="${other.id}"]`);
    await partner.getByRole('button', { name: 'Rotate partner' }).click();
    await partner.getByLabel('Old secret keeps working for').selectOption({ label: '1 day' });
    await partner.getByRole('button', { name: 'Rotate now' }).click();
    await page().getByText(/The old secret keeps working until .*Z\)\./).waitFor();
    await partner.getByText('old secret until').waitFor();
    await page().getByRole('button', { name: 'I have stored it' }).click();

    // From the keyboard: the confirmation opens on Cancel (not on the destructive button), and
    // Escape closes it, back on the row's buttons.
    await row.getByRole('button', { name: 'Revoke acme production' }).focus();
    await page().keyboard.press('Enter');
    const focused = () => page().evaluate('document.activeElement.textContent');
    await until(async () => (await focused()) === 'Cancel', 5_000);
    await page().keyboard.press('Escape');
    await row.getByRole('alertdialog').waitFor({ state: 'detached' });
    await until(async () => (await focused()) === 'Edit', 5_000);
    expect((await use(rotated)).status).toBe(200);

    await row.getByRole('button', { name: 'Revoke acme production' }).click();
    const confirm = row.getByRole('alertdialog', { name: 'Revoke acme production?' });
    await confirm.getByText('This cannot be undone.').waitFor();
    await shot('keys');
    await confirm.getByRole('button', { name: 'Yes, revoke' }).click();
    await row.getByText('revoked').waitFor();
    await until(async () => (await use(rotated)).status === 401, 5_000);
  });

  test('a key that expires within 7 days says so', async () => {
    const soon = new Date(Date.now() + 2 * 86_400_000).toISOString();
    const res = await server.t.gql('mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { apiKey { id } } }', { input: { name: 'short-lived', scopes: ['read'], expiresAt: soon } });
    expect(res.body.errors).toBeUndefined();
    await screen('Overview');
    await screen('Keys');
    const row = page().locator(`tr[data-key-id="${res.body.data.createApiKey.apiKey.id}"]`);
    await row.getByText('expiring soon').waitFor();
    await row.locator(`time[datetime="${soon}"]`).waitFor();
    expect(await row.locator('time').last().getAttribute('title')).toBe(`${soon.replace('T', ' ').slice(0, 19)} UTC`);
  });

  test('edits a key: its scopes and allowed origins change', async () => {
    const row = page().locator('tr').filter({ hasText: 'partner' });
    await row.getByRole('button', { name: 'Edit partner' }).click();
    await page().getByLabel('Scopes').fill('read, write');
    await page().getByLabel('Allowed origins').fill('https://app.example.com');
    await page().getByRole('button', { name: 'Save key' }).click();
    await row.getByText('read, write').waitFor();
    const { body } = await server.t.gql('{ apiKeys { edges { node { name scopes allowedOrigins } } } }');
    expect(body.data.apiKeys.edges.map((e: { node: unknown }) => e.node)).toContainEqual({ name: 'partner', scopes: ['read', 'write'], allowedOrigins: ['https://app.example.com'] });
  });

  test('the audit log shows who did what, with the before/after of each change', async () => {
    await screen('Audit log');
    const revoked = page().locator('tr[data-action="key.revoked"]').first();
    await revoked.getByText('acme production').waitFor();
    // Newest first: the test's own reset (20 → 1000 points), then the page's edit (1000 → 20, and a quota).
    const plan = page().locator('tr[data-action="plan.updated"]').nth(1);
    const admin = (await server.t.gql('{ me { name } }')).body.data.me.name;
    await plan.getByRole('cell', { name: admin, exact: true }).waitFor();
    await plan.getByRole('cell', { name: 'plan Starter', exact: true }).waitFor();
    const diff = await plan.locator('dl.diff').textContent();
    expect(diff).toContain('budgets[{"points":1000,"duration":3600}] → [{"points":20,"duration":3600}]');
    expect(diff).toContain('quotas[] → [{"period":"MONTH","points":100000}]');
    await page().locator('tr[data-action="consumer.created"]').getByRole('link', { name: 'consumer Acme Corp' }).waitFor();
    await shot('audit');
  });

  test('the overview counts the operations of the last 24 hours (those of a key: admitted or refused) and ranks the consumer', async () => {
    await screen('Overview');
    await page().getByRole('row').filter({ hasText: 'Acme Corp' }).getByText('Starter').waitFor();
    const day = page().getByRole('region', { name: 'Last 24 hours' });
    expect(await day.locator('dt').allTextContents()).toEqual(['Operations', 'Points', 'Refused']);
    const operations = await day.locator('dd').first().textContent();
    expect(Number(operations)).toBeGreaterThanOrEqual(6); // 5 admitted + 1 refused of the Acme key, and the admin's own
    // The sign-in with an unknown key is not one: no key, no count; the page says so.
    await page().getByText(/A request refused before its key was known .* is not counted/).waitFor();
    expect(await page().getByRole('columnheader').allTextContents()).toContain('Admitted');
    await page().getByText('None failed.').waitFor();
    await shot('overview');
  });

  test('the overview still shows a consumer deleted after it spent: its row says "(deleted consumer)"', async () => {
    const { createConsumer } = (await server.t.gql('mutation { createConsumer(input: { name: "Gone Ltd" }) { id } }')).body.data;
    const { createApiKey } = (await server.t.gql('mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { secret apiKey { id } } }', { input: { name: 'gone key', scopes: ['read'], consumerId: createConsumer.id } })).body.data;
    expect((await use(createApiKey.secret)).status).toBe(200);
    const TOP = 'query($from: DateTime!, $to: DateTime!) { usageTop(from: $from, to: $to, first: 5) { consumer { id } } }';
    const ranked = async () => (await server.t.gql(TOP, { from: new Date(Date.now() - 86_400_000).toISOString(), to: new Date(Date.now() + 60_000).toISOString() })).body.data.usageTop;
    await until(async () => (await ranked()).some((r: { consumer: { id: string } | null }) => r.consumer?.id === createConsumer.id), 10_000);
    await server.t.gql('mutation($id: ID!) { revokeApiKey(id: $id) { id } }', { id: createApiKey.apiKey.id });
    expect((await server.t.gql('mutation($id: ID!) { deleteConsumer(id: $id) { id } }', { id: createConsumer.id })).body.errors).toBeUndefined();
    // Its usage stays (30 days of it): ranked with no consumer.
    expect(await ranked()).toContainEqual({ consumer: null });
    await screen('Keys');
    await screen('Overview');
    await page().getByRole('row').filter({ hasText: '(deleted consumer)' }).getByRole('cell').first().filter({ hasText: '—' }).waitFor();
    await page().getByRole('row').filter({ hasText: 'Acme Corp' }).getByText('Starter').waitFor();
  });

  test("a plan's most points per operation is set, then cleared back to the server's MAX_QUERY_COST by emptying it", async () => {
    const maxCost = async () => (await server.t.gql('{ plans { edges { node { name maxOperationCost } } } }')).body.data.plans.edges.find((e: { node: { name: string } }) => e.node.name === 'Starter').node.maxOperationCost;
    await screen('Plans');
    const row = page().getByRole('row').filter({ hasText: 'Starter' });
    const field = page().getByLabel('Most points one operation may cost');
    await page().getByRole('button', { name: 'Edit plan Starter' }).click();
    await field.fill('50');
    await page().getByRole('button', { name: 'Save plan' }).click();
    await row.getByRole('cell').nth(3).filter({ hasText: /^50$/ }).waitFor();
    expect(await maxCost()).toBe(50);

    await page().getByRole('button', { name: 'Edit plan Starter' }).click();
    expect(await field.inputValue()).toBe('50');
    await field.fill('');
    await page().getByRole('button', { name: 'Save plan' }).click();
    await page().getByRole('status').filter({ hasText: 'live within a second' }).waitFor();
    await row.getByRole('cell').nth(3).filter({ hasText: /^—$/ }).waitFor({ timeout: 5_000 });
    expect(await maxCost()).toBeNull();
  });

  test("a consumer's custom range: a date emptied is flagged and ignored (the range stays), one the server refuses says why (the controls stay), a new one applies", async () => {
    await screen('Consumers');
    await page().getByRole('link', { name: 'Acme Corp' }).click();
    await page().getByRole('heading', { level: 1, name: 'Acme Corp' }).waitFor();
    await page().getByLabel('Range', { exact: true }).selectOption({ label: 'Custom' });
    const operations = page().locator('[data-usage][aria-busy="false"] [data-total="operations"]');
    await until(async () => Number(await operations.textContent({ timeout: 2000 }).catch(() => 0)) >= 5); // the last 7 days
    const from = page().getByLabel('From', { exact: true });
    await from.fill('');
    await page().getByRole('button', { name: 'Refresh' }).click();
    expect(await page().locator('input[type="datetime-local"]:invalid').count()).toBe(1);
    expect(Number(await operations.textContent())).toBeGreaterThanOrEqual(5);
    // Years of hours: the server refuses the range; its reason shows, and the controls stay to fix it.
    await from.fill('2020-01-01T00:00');
    await page().getByRole('alert').filter({ hasText: 'at most' }).waitFor();
    // A day long before the key: nothing in it.
    await page().getByLabel('To', { exact: true }).fill('2020-01-02T00:00');
    await page().getByRole('alert').waitFor({ state: 'detached' });
    await until(async () => (await operations.textContent({ timeout: 2000 }).catch(() => '')) === '0');
    expect(await page().locator('input[type="datetime-local"]:invalid').count()).toBe(0);
  });

  test('editing a key keeps its expiry, to the second, across a daylight-saving change; a new expiry is read at its own offset', async () => {
    // The browser is in Europe/Paris: an expiry on the other side of a change of offset from today, with seconds.
    const now = Math.floor(Date.now() / 60_000) * 60_000 + 37_000;
    const candidates = [90, 180, 270].map((days) => now + days * 86_400_000);
    const offsets = (await page().evaluate(`${JSON.stringify([now, ...candidates])}.map((t) => new Date(t).getTimezoneOffset())`)) as number[];
    const expiry = new Date(candidates[offsets.slice(1).findIndex((o) => o !== offsets[0])]);
    /** The wall-clock time in Paris, as a datetime-local input has it. */
    const paris = (t: number) => {
      const part = Object.fromEntries(new Intl.DateTimeFormat('en-GB', { timeZone: 'Europe/Paris', year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', minute: '2-digit', hourCycle: 'h23' }).formatToParts(t).map((p) => [p.type, p.value]));
      return `${part.year}-${part.month}-${part.day}T${part.hour}:${part.minute}`;
    };
    const { createApiKey } = (await server.t.gql('mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { apiKey { id } } }', { input: { name: 'summer key', scopes: ['read'], expiresAt: expiry.toISOString() } })).body.data;
    const stored = async () => (await server.t.gql('query($id: ID!) { apiKey(id: $id) { scopes expiresAt } }', { id: createApiKey.apiKey.id })).body.data.apiKey;

    await screen('Keys');
    const row = page().locator(`tr[data-key-id="${createApiKey.apiKey.id}"]`);
    await row.getByRole('button', { name: 'Edit summer key' }).click();
    expect(await page().getByLabel('Expires').inputValue()).toBe(paris(expiry.getTime()));
    await page().getByLabel('Scopes').fill('read, write');
    await page().getByRole('button', { name: 'Save key' }).click();
    await row.getByText('read, write').waitFor();
    expect(await stored()).toEqual({ scopes: ['read', 'write'], expiresAt: expiry.toISOString() });

    // A day later, typed as Paris time: stored at that date's offset (to the minute).
    await row.getByRole('button', { name: 'Edit summer key' }).click();
    await page().getByLabel('Expires').fill(paris(expiry.getTime() + 86_400_000));
    await page().getByRole('button', { name: 'Save key' }).click();
    await page().getByRole('form', { name: 'Edit key summer key' }).waitFor({ state: 'detached' });
    expect((await stored()).expiresAt).toBe(new Date(expiry.getTime() - 37_000 + 86_400_000).toISOString());
  });

  /** Holds the console's requests for one operation until the returned function is called. */
  const hold = async (operation: string) => {
    let release!: () => void;
    const released = new Promise<void>((resolve) => (release = resolve));
    await page().route('**/graphql', async (route: Route) => {
      if (route.request().postData()?.includes(operation)) await released;
      await route.continue();
    });
    return async () => {
      release();
      await page().unrouteAll({ behavior: 'wait' }); // once the held requests are sent on
    };
  };
  /** `count` of something made by `mutation` (its input a name), ten at a time, by an admin key with room for them. */
  const fillers = async (mutation: string, count: number) => {
    const { secret } = await server.t.createKey({ name: 'filler', scopes: ['admin'], budget: { points: 100_000, duration: 60 } });
    for (let i = 0; i < count; i += 10) {
      const made = await Promise.all(Array.from({ length: 10 }, (_, j) => server.t.gql(mutation, { input: { name: `Filler ${i + j}` } }, secret)));
      expect(made.map((res) => res.body.errors)).toEqual(Array(10).fill(undefined));
    }
  };

  test("editing a key keeps its consumer: one past the console's first 100 choices, or before the choices have loaded", async () => {
    const CREATE = 'mutation($input: CreateConsumerInput!) { createConsumer(input: $input) { id } }';
    await fillers(CREATE, 100);
    const late = (await server.t.gql(CREATE, { input: { name: 'Late Co' } })).body.data.createConsumer.id;
    const { createApiKey } = (await server.t.gql('mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { apiKey { id } } }', { input: { name: 'late key', scopes: ['read'], consumerId: late } })).body.data;
    const stored = async () => (await server.t.gql('query($id: ID!) { apiKey(id: $id) { scopes consumer { name } } }', { id: createApiKey.apiKey.id })).body.data.apiKey;
    await screen('Overview');
    await screen('Keys');
    const row = page().locator(`tr[data-key-id="${createApiKey.apiKey.id}"]`);
    const consumer = page().getByLabel('Consumer');

    await row.getByRole('button', { name: 'Edit late key' }).click();
    await until(async () => (await consumer.locator('option').count()) > 100);
    expect(await consumer.inputValue()).toBe(late);
    await page().getByLabel('Scopes').fill('read, write');
    await page().getByRole('button', { name: 'Save key' }).click();
    await row.getByText('read, write').waitFor();
    expect(await stored()).toEqual({ scopes: ['read', 'write'], consumer: { name: 'Late Co' } });

    const release = await hold('ConsoleConsumerChoices');
    await row.getByRole('button', { name: 'Edit late key' }).click();
    expect(await consumer.inputValue()).toBe(late);
    expect(await consumer.locator('option').allTextContents()).toEqual(['— none —', 'Late Co']); // the choices still on their way
    await page().getByLabel('Scopes').fill('read');
    await page().getByRole('button', { name: 'Save key' }).click();
    await row.getByRole('cell', { name: 'read', exact: true }).waitFor();
    await release();
    expect(await stored()).toEqual({ scopes: ['read'], consumer: { name: 'Late Co' } });
  });

  test("editing a consumer keeps its plan: one past the console's first 100 choices, or before the choices have loaded", async () => {
    await fillers('mutation($input: CreatePlanInput!) { createPlan(input: $input) { id } }', 100);
    const { createPlan } = (await server.t.gql('mutation { createPlan(input: { name: "Late plan" }) { id } }')).body.data;
    const { createConsumer } = (await server.t.gql('mutation($plan: ID!) { createConsumer(input: { name: "Planned Ltd", planId: $plan }) { id } }', { plan: createPlan.id })).body.data;
    const stored = async () => (await server.t.gql('query($id: ID!) { consumer(id: $id) { name plan { name } } }', { id: createConsumer.id })).body.data.consumer;
    await page().evaluate(`location.hash = '#/consumers/${createConsumer.id}'`);
    await page().getByRole('heading', { level: 1, name: 'Planned Ltd' }).waitFor();
    const plan = page().getByLabel('Plan', { exact: true });

    await page().getByRole('button', { name: 'Edit' }).click();
    await until(async () => (await plan.locator('option').count()) > 100);
    expect(await plan.inputValue()).toBe(createPlan.id);
    await page().getByLabel('Name').fill('Planned Ltd 2');
    await page().getByRole('button', { name: 'Save consumer' }).click();
    await page().getByRole('heading', { level: 1, name: 'Planned Ltd 2' }).waitFor();
    expect(await stored()).toEqual({ name: 'Planned Ltd 2', plan: { name: 'Late plan' } });

    const release = await hold('ConsolePlanChoices');
    await page().getByRole('button', { name: 'Edit' }).click();
    expect(await plan.inputValue()).toBe(createPlan.id);
    expect(await plan.locator('option').allTextContents()).toEqual(['— no plan —', 'Late plan']); // the choices still on their way
    await page().getByLabel('Name').fill('Planned Ltd 3');
    await page().getByRole('button', { name: 'Save consumer' }).click();
    await page().getByRole('heading', { level: 1, name: 'Planned Ltd 3' }).waitFor();
    await release();
    expect(await stored()).toEqual({ name: 'Planned Ltd 3', plan: { name: 'Late plan' } });
  });

  test('signing out forgets the key: the console asks for one again', async () => {
    await page().getByRole('button', { name: 'Sign out' }).click();
    await page().getByLabel('Admin key').waitFor();
    await page().getByRole('status').filter({ hasText: 'Signed out.' }).waitFor();
    expect(await page().getByLabel('Admin key').inputValue()).toBe('');
  });
});
