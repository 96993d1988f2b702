import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * A freshly initialised PGlite cluster, kept as a tarball beside the installed package. Creating
 * an empty cluster runs initdb inside WebAssembly (about 4 s here); loading this template takes
 * about 1 s, so the first start on an empty DATA_DIR (and every in-memory test database) skips
 * initdb. It belongs to one PGlite version, so the version is in its name; without it PGlite
 * simply runs initdb. `npm install` writes it (the `prepare` script); it holds no data of ours.
 */
function pgliteDir(): string {
  // Its exports map hides package.json; its entry point is <dir>/dist/index.cjs.
  let dir = path.dirname(require.resolve('@electric-sql/pglite'));
  while (!existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return dir;
}

export function templatePath(): string {
  const pkg = JSON.parse(readFileSync(path.join(pgliteDir(), 'package.json'), 'utf8')) as { version: string };
  // node_modules/@electric-sql/pglite → node_modules/.cache/tollgate
  return path.join(pgliteDir(), '..', '..', '.cache', 'tollgate', `pglite-${pkg.version}-template.tar.gz`);
}

/** The template to start a new cluster from, if this installation has one. */
export function loadTemplate(): Blob | undefined {
  try {
    const file = templatePath();
    return existsSync(file) ? new Blob([readFileSync(file)]) : undefined;
  } catch {
    return undefined;
  }
}

/** Writes the template if it is missing (atomically: a half-written file is never used). */
export async function ensureTemplate(): Promise<string> {
  const file = templatePath();
  if (existsSync(file)) return file;
  const { PGlite } = await import('@electric-sql/pglite');
  const fresh = await PGlite.create('memory://');
  const dump = await fresh.dumpDataDir('gzip');
  await fresh.close();
  mkdirSync(path.dirname(file), { recursive: true });
  const partial = `${file}.${process.pid}.partial`;
  writeFileSync(partial, Buffer.from(await dump.arrayBuffer()));
  renameSync(partial, file);
  return file;
}
