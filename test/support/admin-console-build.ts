import { execFileSync } from 'node:child_process';
import { existsSync, readdirSync, statSync } from 'node:fs';
import path from 'node:path';

const root = path.resolve(__dirname, '..', '..');
const source = path.join(root, 'src', 'admin-console', 'ui');
const built = path.join(root, 'dist', 'admin-console', 'app.js');

/**
 * The console's tests use the built files (dist/admin-console, made by `npm run build`): built
 * again here, once per run, when missing or older than a file of its source or the lock file.
 */
export function buildAdminConsoleIfStale(): void {
  const builtAt = existsSync(built) && existsSync(path.join(path.dirname(built), 'index.html')) ? statSync(built).mtimeMs : 0;
  const inputs = [...readdirSync(source).map((f) => path.join(source, f)), path.join(root, 'package-lock.json')];
  if (builtAt && inputs.every((file) => statSync(file).mtimeMs <= builtAt)) return;
  execFileSync('npm', ['run', '--silent', 'build:console'], { cwd: root, stdio: 'inherit' });
}
