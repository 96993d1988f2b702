import { constants, cpSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

/**
 * A freshly initialised PGlite cluster, kept beside the installed package. Creating an empty
 * cluster runs initdb inside WebAssembly (about 4 s here). The template comes in two forms:
 * - a folder, copied into a new DATA_DIR (a plain file copy, then PGlite opens it as an existing
 *   cluster: about 0.6 s in all);
 * - a gzipped tarball of the same files, for in-memory databases (tests), which PGlite can only
 *   fill through `loadDataDir` (unpacking it into a folder costs about 1.3 s, hence the folder).
 * It belongs to one PGlite version, so the version is in its name; without it PGlite simply runs
 * initdb. `npm install` writes it (the `prepare` script); it holds no data of ours.
 */
function pgliteDir(): string {
  // Its exports map hides package.json; its entry point is <dir>/dist/index.cjs.
  let dir = path.dirname(require.resolve('@electric-sql/pglite'));
  while (!existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return dir;
}

/**
 * The template holds one database, `postgres` (the one PGlite opens), not initdb's three: without
 * template0 and template1 a new folder is 370 files instead of 970, and creating files is what a
 * first start spends copying (0.9 s against 0.4 s on this VM). Embedded Tollgate never runs
 * CREATE DATABASE (PGlite serves one database per folder). Part of the name, so a template of
 * another form is never taken for this one.
 */
const TEMPLATE_FORM = 'one-database';

function templateBase(): string {
  const pkg = JSON.parse(readFileSync(path.join(pgliteDir(), 'package.json'), 'utf8')) as { version: string };
  // node_modules/@electric-sql/pglite → node_modules/.cache/tollgate
  return path.join(pgliteDir(), '..', '..', '.cache', 'tollgate', `pglite-${pkg.version}-${TEMPLATE_FORM}-template`);
}

export const templatePath = (): string => `${templateBase()}.tar.gz`;
export const templateFolder = (): string => templateBase();

/** The template to fill a new in-memory cluster from, if this installation has one. */
export function loadTemplate(): Blob | undefined {
  try {
    const file = templatePath();
    return existsSync(file) ? new Blob([readFileSync(file)]) : undefined;
  } catch {
    return undefined;
  }
}

/**
 * Fills an empty data folder with the template cluster; false when there is no template (PGlite
 * then runs initdb). The folder is complete and cleanly shut down, so a copy is a valid cluster.
 */
export function copyTemplateInto(dataDir: string): boolean {
  try {
    const folder = templateFolder();
    if (!existsSync(path.join(folder, 'PG_VERSION'))) return false;
    // A copy-on-write clone where the filesystem offers one (btrfs, XFS), a plain copy elsewhere.
    cpSync(folder, dataDir, { recursive: true, mode: constants.COPYFILE_FICLONE });
    return true;
  } catch {
    return false;
  }
}

/** Writes whichever form of the template is missing (atomically: a half-written one is never used). */
export async function ensureTemplate(): Promise<string> {
  const file = templatePath();
  const folder = templateFolder();
  const { PGlite } = require('@electric-sql/pglite') as typeof import('@electric-sql/pglite'); // see client.ts
  if (!existsSync(file)) {
    const fresh = await PGlite.create('memory://');
    await fresh.exec('ALTER DATABASE template0 IS_TEMPLATE false; ALTER DATABASE template1 IS_TEMPLATE false;');
    await fresh.exec('DROP DATABASE template0');
    await fresh.exec('DROP DATABASE template1');
    await fresh.exec('CHECKPOINT');
    const dump = await fresh.dumpDataDir('gzip');
    await fresh.close();
    mkdirSync(path.dirname(file), { recursive: true });
    const partial = `${file}.${process.pid}.partial`;
    writeFileSync(partial, Buffer.from(await dump.arrayBuffer()));
    renameSync(partial, file);
  }
  if (!existsSync(path.join(folder, 'PG_VERSION'))) {
    const partial = `${folder}.${process.pid}.partial`;
    rmSync(partial, { recursive: true, force: true });
    const unpacked = await PGlite.create(partial, { loadDataDir: new Blob([readFileSync(file)]) });
    await unpacked.close();
    rmSync(folder, { recursive: true, force: true });
    renameSync(partial, folder);
  }
  return folder;
}
