import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

/**
 * `npm start` runs the compiled server (dist/, built by `npm install`): node alone starts in about
 * half the time node + tsx needs. The price is a build that can fall behind the source in a
 * checkout someone is editing. This names the first source file changed after the build, so the
 * server can say so instead of silently running old code. Outside a checkout (an installed
 * package, or tsx running src/ itself) there is nothing to compare and it returns undefined.
 */
export function sourceEditedSinceBuild(entry: string): string | undefined {
  if (!entry.endsWith('.js')) return undefined; // running from source
  const source = path.resolve(path.dirname(entry), '..', '..', 'src'); // dist/src/main.js or dist/server/main.js → src/
  if (!existsSync(source)) return undefined;
  const builtAt = statSync(entry).mtimeMs;
  for (const file of readdirSync(source, { recursive: true }) as string[]) {
    // The server's TypeScript, and the admin console's (its .tsx screens, style and page).
    if (/\.(ts|tsx|css|html)$/.test(file) && statSync(path.join(source, file)).mtimeMs > builtAt) return path.join('src', file);
  }
  return undefined;
}
