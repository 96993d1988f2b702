import { existsSync } from 'node:fs';
import path from 'node:path';

/** A migrations folder and where Drizzle records which of its migrations were applied. */
export type Migrations = { folder: string; table: string; schema: string };

// Resolve drizzle/ from this file so it works from src/ (tsx), dist/src/ (compiled) and an
// installed package (node_modules/tollgate/dist/src/).
function findDrizzleFolder(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    const candidate = path.join(dir, 'drizzle', 'tollgate', 'meta', '_journal.json');
    if (existsSync(candidate)) return path.join(dir, 'drizzle');
    dir = path.dirname(dir);
  }
  throw new Error(`drizzle/ migrations folder not found above ${__dirname}`);
}

const drizzleFolder = findDrizzleFolder();

/** Tollgate's own tables (schema `tollgate`), tracked in tollgate.__migrations. */
export const tollgateMigrations: Migrations = { folder: path.join(drizzleFolder, 'tollgate'), table: '__migrations', schema: 'tollgate' };
