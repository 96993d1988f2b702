import { readFileSync } from 'node:fs';
import path from 'node:path';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ErrorCode, errorBody } from '../errors';
import { ADMIN_CONSOLE_FILES, adminConsoleHeaders, adminConsoleRoot } from '../admin-console/files';

/**
 * The bundled server's /admin: the three files, read once at start-up, with `adminConsoleHeaders`.
 * Returns false when they were not built (the routes then say so instead of a bare 404).
 */
export function registerAdminConsole(app: FastifyInstance, onMissing: (message: string) => void): boolean {
  const root = adminConsoleRoot();
  const files = new Map(root ? Object.entries(ADMIN_CONSOLE_FILES).map(([name, type]) => [name, { type, body: readFileSync(path.join(root, name)) }]) : []);
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
