import { existsSync } from 'node:fs';
import path from 'node:path';

// Resolve drizzle/ from this file so it works from src/ (tsx) and from dist/src/ (compiled).
function findMigrationsFolder(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    const candidate = path.join(dir, 'drizzle', 'meta', '_journal.json');
    if (existsSync(candidate)) return path.dirname(path.dirname(candidate));
    dir = path.dirname(dir);
  }
  throw new Error(`drizzle/ migrations folder not found above ${__dirname}`);
}

export const migrationsFolder = findMigrationsFolder();
