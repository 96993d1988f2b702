import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { loadConfig } from '../../src/config';
import { createTollgate } from '../../src/index';
import { writeAdminKeyFile } from '../../src/tollgate';
import { testConfig } from '../support/harness';
import { serving, start } from '../support/server-process';
import { stopChild } from '../support/processes';
import { fingerprint, httpsRequest, makeCertificate } from '../support/tls';
import { until } from '../support/wait';

// The real server process in production, as a container would run it: HTTPS from its own files,
// the first admin key in a 0600 file (never on stdout), the start-up line saying what is exposed,
// and a renewed certificate picked up on SIGHUP.

let dir: string;
beforeAll(() => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'tollgate-transport-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

it('production with TLS_CERT_FILE/TLS_KEY_FILE and BOOTSTRAP_ADMIN_KEY_FILE: HTTPS, the key only in the file, metrics off, SIGHUP reloads the certificate', async () => {
  const first = makeCertificate(dir, 'first');
  const second = makeCertificate(dir, 'second');
  const certFile = path.join(dir, 'served.pem');
  const keyFile = path.join(dir, 'served-key.pem');
  copyFileSync(first.certFile, certFile);
  copyFileSync(first.keyFile, keyFile);
  const keyOut = path.join(dir, 'admin-key');
  const p = start({ NODE_ENV: 'production', DATA_DIR: path.join(dir, 'db'), TLS_CERT_FILE: certFile, TLS_KEY_FILE: keyFile, BOOTSTRAP_ADMIN_KEY_FILE: keyOut });
  try {
    const { url, adminKey } = await serving(p);
    expect(url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    // The key is in the file, readable by its owner only, and nowhere in the output.
    expect(adminKey).toBeUndefined();
    expect(statSync(keyOut).mode & 0o777).toBe(0o600);
    const secret = readFileSync(keyOut, 'utf8').trim();
    expect(secret).toMatch(/^tg_\w+$/);
    expect([...p.stdout, ...p.stderr].join('\n')).not.toContain(secret);
    const lines = p.stdout.filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
    expect(lines.find((l) => l.msg.startsWith('first admin key written'))).toMatchObject({ file: keyOut });
    // The start-up line says what this instance exposes, and how to change it.
    expect(lines.find((l) => l.msg === 'Tollgate is serving')).toMatchObject({
      https: true,
      requireHttps: expect.stringMatching(/^on: keys over plain HTTP are refused/),
      metrics: expect.stringMatching(/^off \(production: set METRICS_TOKEN, or METRICS_PORT/),
    });

    const me = await httpsRequest(`${url}/graphql`, { ca: first.cert, headers: { 'x-api-key': secret }, body: { query: '{ me { id } }' } });
    expect(me.status).toBe(200);
    expect(me.headers['strict-transport-security']).toBe('max-age=15552000');
    expect((await httpsRequest(`${url}/metrics`, { ca: first.cert })).status).toBe(404);

    // A renewed certificate, then SIGHUP: new connections get it, no restart.
    copyFileSync(second.certFile, certFile);
    copyFileSync(second.keyFile, keyFile);
    p.child.kill('SIGHUP');
    await until(() => p.stdout.some((l) => l.includes('TLS certificate and key reloaded')));
    const renewed = await httpsRequest(`${url}/health`, { ca: second.cert });
    expect(renewed.peer.fingerprint256).toBe(fingerprint(second.cert));
    expect(p.child.exitCode).toBeNull();
  } finally {
    await stopChild(p.child, 'SIGTERM');
  }
});

it('a TLS file that cannot be read stops the start, naming the variable', async () => {
  const cert = makeCertificate(dir, 'lonely');
  const p = start({ DATA_DIR: path.join(dir, 'db2'), TLS_CERT_FILE: cert.certFile, TLS_KEY_FILE: path.join(dir, 'no-such-key.pem') });
  const { code } = await p.exit;
  expect(code).toBe(1);
  expect(p.stderr.join('\n')).toMatch(/^Tollgate cannot start: Invalid configuration:\n {2}TLS_KEY_FILE: cannot read ".*no-such-key\.pem" \(ENOENT\)/);
  expect(existsSync(path.join(dir, 'db2'))).toBe(false);
});

it('the library writes the first admin key to BOOTSTRAP_ADMIN_KEY_FILE too: an existing file is tightened to 0600, a symbolic link is refused', async () => {
  const keyOut = path.join(dir, 'library-admin-key');
  writeFileSync(keyOut, 'old\n', { mode: 0o644 });
  const printed = jest.spyOn(process.stdout, 'write');
  const tollgate = await createTollgate({ config: testConfig({ DATA_DIR: 'memory://', LOG_LEVEL: 'silent', BOOTSTRAP_ADMIN_KEY_FILE: keyOut }) });
  try {
    const secret = readFileSync(keyOut, 'utf8').trim();
    expect(secret).toMatch(/^tg_\w+$/);
    expect(statSync(keyOut).mode & 0o777).toBe(0o600);
    expect(printed.mock.calls.flat().join('')).not.toContain(secret);
    expect((await tollgate.services.authenticator.authenticate(secret)).ok).toBe(true);
  } finally {
    printed.mockRestore();
    await tollgate.close();
  }
  const link = path.join(dir, 'link-to-elsewhere');
  symlinkSync(path.join(dir, 'elsewhere'), link);
  expect(() => writeAdminKeyFile(link, 'tg_secret')).toThrow(/^BOOTSTRAP_ADMIN_KEY_FILE: could not write ".*link-to-elsewhere" \(ELOOP\)\. The first admin key was created but not shown/);
  expect(existsSync(path.join(dir, 'elsewhere'))).toBe(false);
  expect(() => loadConfig({ BOOTSTRAP_ADMIN_KEY_FILE: path.join(dir, 'no-such-folder', 'key') })).toThrow(/BOOTSTRAP_ADMIN_KEY_FILE: cannot write into the folder of/);
});
