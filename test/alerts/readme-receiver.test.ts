import { mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import type { ChildProcess } from 'node:child_process';
import { Webhook } from 'standardwebhooks';
import { openTestDatabase, startTestServer, type TestDatabase, type TestServer } from '../support/harness';
import { killGroup, spawnTracked } from '../support/processes';
import { until } from '../support/wait';

// The README's webhook receiver — copied from the README, not from here — run with plain node
// against a Tollgate that sends it a real alert: it prints the verified event once, and refuses a
// forged one with 400.
const root = path.resolve(__dirname, '..', '..');
const SECRET = `whsec_${Buffer.from('the readme receiver secret, 32 bytes').toString('base64')}`;

function readmeReceiver(): string {
  const readme = readFileSync(path.join(root, 'README.md'), 'utf8');
  const block = [...readme.matchAll(/```js\n([\s\S]*?)```/g)].map((m) => m[1]).find((b) => b.startsWith('// receiver.mjs'));
  if (!block) throw new Error('README has no ```js block starting with // receiver.mjs');
  return block;
}

describe("the README's webhook receiver", () => {
  let dir: string;
  let receiver: ChildProcess;
  const out: string[] = [];
  let url: string;
  let db: TestDatabase;
  let t: TestServer;

  beforeAll(async () => {
    dir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-receiver-'));
    writeFileSync(path.join(dir, 'receiver.mjs'), readmeReceiver());
    symlinkSync(path.join(root, 'node_modules'), path.join(dir, 'node_modules')); // `npm install standardwebhooks`
    receiver = spawnTracked(process.execPath, ['receiver.mjs'], { cwd: dir, env: { PATH: process.env.PATH, PORT: '0', ALERT_WEBHOOK_SECRET: SECRET }, stdio: ['ignore', 'pipe', 'inherit'] });
    receiver.stdout!.on('data', (chunk) => out.push(...String(chunk).split('\n').filter(Boolean)));
    await until(async () => out.some((l) => /receiving on port \d+/.test(l)), 10_000);
    url = `http://127.0.0.1:${/receiving on port (\d+)/.exec(out.join('\n'))![1]}/`;
    db = await openTestDatabase('pglite');
    t = await startTestServer({ database: db, env: { ALERT_WEBHOOK_URL: url, ALERT_WEBHOOK_SECRET: SECRET } });
  });
  afterAll(async () => {
    await t?.close();
    await db?.dispose();
    killGroup(receiver?.pid);
    rmSync(dir, { recursive: true, force: true });
  });

  it('prints a signed alert once, and answers a forged one 400', async () => {
    const expiresAt = new Date(Date.now() + 36 * 3_600_000).toISOString();
    const created = await t.gql(`mutation { createApiKey(input: { name: "soon", scopes: ["read"], expiresAt: "${expiresAt}" }) { apiKey { id } } }`);
    const { id } = created.body.data.createApiKey.apiKey;
    await until(async () => out.some((l) => l.startsWith('key.expiring ')), 15_000);
    const printed = out.filter((l) => l.startsWith('key.expiring ')).map((l) => JSON.parse(l.slice('key.expiring '.length)));
    expect(printed).toEqual([{ keyId: id, expiresAt: new Date(expiresAt).toISOString(), days: 7 }]);
    const deliveries = await t.gql('{ webhookDeliveries(first: 5) { edges { node { type status lastResult } } } }');
    expect(deliveries.body.data.webhookDeliveries.edges[0].node).toEqual({ type: 'key.expiring', status: 'DELIVERED', lastResult: 'HTTP 204' });

    // Signed with another secret: refused, and not printed.
    const body = JSON.stringify({ type: 'key.expiring', timestamp: new Date().toISOString(), data: { keyId: 'forged' } });
    const forger = new Webhook(`whsec_${Buffer.from('somebody else entirely, 32 bytes').toString('base64')}`);
    const sentAt = new Date();
    const forged = await fetch(url, { method: 'POST', body, headers: { 'webhook-id': 'msg_forged', 'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)), 'webhook-signature': forger.sign('msg_forged', sentAt, body) } });
    expect(forged.status).toBe(400);
    // A retry of the one it handled (same webhook-id, signed anew): acknowledged, not acted on twice.
    const real = new Webhook(SECRET);
    const first = (await t.gql('{ webhookDeliveries(first: 1) { edges { node { id payload } } } }')).body.data.webhookDeliveries.edges[0].node;
    const again = JSON.stringify(first.payload);
    const retried = await fetch(url, { method: 'POST', body: again, headers: { 'webhook-id': first.id, 'webhook-timestamp': String(Math.floor(sentAt.getTime() / 1000)), 'webhook-signature': real.sign(first.id, sentAt, again) } });
    expect(retried.status).toBe(204);
    expect(out.filter((l) => l.startsWith('key.expiring '))).toHaveLength(1);
    expect(out.some((l) => l.includes('forged'))).toBe(false);
  });
});
