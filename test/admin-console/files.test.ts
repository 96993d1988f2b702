import { readFileSync } from 'node:fs';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import { adminConsoleHeaders, adminConsoleRoot } from '../../src/admin-console/files';
import { useTestServer, withTestServer } from '../support/harness';

/** The budget the README states: the console's JS and CSS together, gzipped. */
const BUDGET_GZIP_BYTES = 60 * 1024;

describe('/admin: the console\'s static files', () => {
  const server = useTestServer();

  test('/admin redirects to /admin/, which serves the page with a CSP that allows only its own script, style and origin, and no framing', async () => {
    const redirect = await fetch(`${server.t.url}/admin`, { redirect: 'manual' });
    expect(redirect.status).toBe(302);
    expect(redirect.headers.get('location')).toBe('/admin/');

    const page = await fetch(`${server.t.url}/admin/`);
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8');
    const csp = page.headers.get('content-security-policy')!;
    expect(csp).toContain("default-src 'none'");
    expect(csp).toContain("script-src 'self'");
    expect(csp).toContain("connect-src 'self'");
    expect(csp).toContain("frame-ancestors 'none'");
    expect(csp).not.toContain('unsafe-inline');
    expect(page.headers.get('x-frame-options')).toBe('DENY');
    expect(page.headers.get('x-content-type-options')).toBe('nosniff');
    const html = await page.text();
    // No inline script and nothing from elsewhere: the page names only its own two files.
    expect(html).toMatch(/<script type="module" src="\.\/app\.js"><\/script>/);
    expect(html).not.toMatch(/<script>|<script [^>]*>[^<]|https?:\/\//);

    for (const [file, type] of [['app.js', 'text/javascript; charset=utf-8'], ['app.css', 'text/css; charset=utf-8']]) {
      const response = await fetch(`${server.t.url}/admin/${file}`);
      expect(response.status).toBe(200);
      expect(response.headers.get('content-type')).toBe(type);
      expect(response.headers.get('content-security-policy')).toBe(adminConsoleHeaders['content-security-policy']);
    }
    const missing = await fetch(`${server.t.url}/admin/secrets.txt`);
    expect(missing.status).toBe(404);
    expect(((await missing.json()) as any).errors[0].extensions.code).toBe('NOT_FOUND');
  });

  test('the bundle names no other origin (no CDN: it works offline)', () => {
    const js = readFileSync(path.join(adminConsoleRoot()!, 'app.js'), 'utf8');
    // Licence comments and XML namespaces name URLs without fetching them; no other URL is in the bundle.
    const urls = [...js.matchAll(/https?:\/\/[^\s"'`)]+/g)].map((m) => m[0]).filter((u) => !/^http:\/\/www\.w3\.org\//.test(u) && !/github\.com|opensource\.org|leeoniya/.test(u));
    expect(urls).toEqual([]);
  });

  test(`the console's JS and CSS stay under ${BUDGET_GZIP_BYTES / 1024} KB gzipped`, () => {
    const root = adminConsoleRoot()!;
    const size = ['app.js', 'app.css'].reduce((sum, file) => sum + gzipSync(readFileSync(path.join(root, file)), { level: 9 }).length, 0);
    expect(size).toBeLessThan(BUDGET_GZIP_BYTES);
  });
});

test('ADMIN_CONSOLE=false: /admin is not served (404), /graphql is', async () => {
  await withTestServer({ env: { ADMIN_CONSOLE: 'false' } }, async (t) => {
    for (const route of ['/admin', '/admin/', '/admin/app.js']) expect((await fetch(`${t.url}${route}`)).status).toBe(404);
    expect((await t.gql('{ me { id } }')).status).toBe(200);
  });
});
