import { existsSync, readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode, errorBody } from '../errors';

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

/** The built files (npm run build): index.html, app.js, app.css. */
const FILES: Readonly<Record<string, string>> = { 'index.html': 'text/html; charset=utf-8', 'app.js': 'text/javascript; charset=utf-8', 'app.css': 'text/css; charset=utf-8' };

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

/**
 * The bundled server's /admin: the three files, read once at start-up, with `adminConsoleHeaders`.
 * Returns false when they were not built (the routes then say so instead of a bare 404).
 */
export function registerAdminConsole(app: FastifyInstance, onMissing: (message: string) => void): boolean {
  const root = adminConsoleRoot();
  const files = new Map(root ? Object.entries(FILES).map(([name, type]) => [name, { type, body: readFileSync(path.join(root, name)) }]) : []);
  if (!root) onMissing('the admin console was not built (npm run build writes dist/admin-console/): /admin answers 404');
  // Relative asset URLs in index.html need the trailing slash.
  app.get('/admin', (_request, reply) => reply.redirect('/admin/', 302));
  const serve = (request: FastifyRequest, reply: FastifyReply) => {
    const name = (request.params as { file?: string }).file || 'index.html';
    const file = files.get(name);
    if (!file) {
      const message = root ? `No file ${JSON.stringify(name.slice(0, 64))} in the admin console.` : 'The admin console was not built: run npm run build.';
      return reply.code(404).headers(adminConsoleHeaders).type('application/json').send(errorBody(ErrorCode.NOT_FOUND, message));
    }
    return reply.headers(adminConsoleHeaders).type(file.type).send(file.body);
  };
  app.get('/admin/', serve);
  app.get('/admin/:file', serve);
  return root !== undefined;
}
