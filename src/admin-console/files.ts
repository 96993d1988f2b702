import { existsSync } from 'node:fs';
import path from 'node:path';

/**
 * Every answer of the console carries these. The page runs only its own bundled script and style
 * (no inline script, no other origin: nothing is fetched from a CDN or elsewhere at run time), talks
 * only to its own origin (`/graphql`), and may not be framed (clickjacking an admin's clicks).
 */
export const adminConsoleHeaders: Readonly<Record<string, string>> = Object.freeze({
  'content-security-policy':
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; font-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
  'x-frame-options': 'DENY',
  'x-content-type-options': 'nosniff',
  'referrer-policy': 'no-referrer',
  // The page holds an admin key in memory: never serve an old copy of it from a cache.
  'cache-control': 'no-store',
});

/** The built files (npm run build): index.html, app.js, app.css, and their content types. */
export const ADMIN_CONSOLE_FILES: Readonly<Record<string, string>> = { 'index.html': 'text/html; charset=utf-8', 'app.js': 'text/javascript; charset=utf-8', 'app.css': 'text/css; charset=utf-8' };

/**
 * The folder of the console's static files, for a library user to mount with their own static
 * file server (with `adminConsoleHeaders`); undefined when it was never built. Found from this
 * file, so it works from src/ (tests), dist/src/, the bundled dist/server/ and an installed package.
 */
export function adminConsoleRoot(): string | undefined {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    const candidate = path.join(dir, 'dist', 'admin-console');
    if (existsSync(path.join(candidate, 'index.html'))) return candidate;
    dir = path.dirname(dir);
  }
  return undefined;
}
