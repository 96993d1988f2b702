import { closeSync, openSync, readFileSync, renameSync, unlinkSync, writeFileSync, writeSync } from 'node:fs';
import path from 'node:path';
import { StartupError } from '../config';

/** Who holds a data folder; `url` once that process serves HTTP (a server records it after it listens). */
export type Holder = { pid: number; purpose: string; startedAt: string; url?: string };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

const lockFile = (dataDir: string) => `${path.resolve(dataDir)}.lock`;

function readHolder(file: string): Holder | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Holder;
  } catch {
    return null; // unreadable or half-written: treated as stale
  }
}

/**
 * The folder is held by another live process. The message names it and, when it serves HTTP, the
 * address to reach its admin API at: the one it really listens on, not a default port.
 */
export class DataDirInUseError extends StartupError {
  constructor(
    readonly dataDir: string,
    readonly holder: Holder,
  ) {
    super(
      `DATA_DIR: the embedded database ${dataDir} is in use by process ${holder.pid} (${holder.purpose}, since ${holder.startedAt}` +
        `${holder.url ? `, serving ${holder.url}` : ''}). PGlite allows one process per folder: stop that process first, or go through its admin API ` +
        `(TOLLGATE_ADMIN_KEY=<admin key> npm run keys -- --url ${holder.url ?? '<the address it serves>'} list).`,
    );
  }
}

/**
 * PGlite is a single-process database: two processes that open the same folder corrupt each
 * other's view, and writes are lost without an error. So one process owns the folder, through
 * a lock file beside it (`<dir>.lock`, created with O_EXCL, holding the owner's pid). A second
 * opener fails at once, naming the holder; a lock left by a process that no longer exists is
 * taken over. Returns the release function.
 */
export function lockDataDir(dataDir: string, purpose: string): () => void {
  const file = lockFile(dataDir);
  const mine: Holder = { pid: process.pid, purpose, startedAt: new Date().toISOString() };
  for (let attempt = 0; attempt < 2; attempt++) {
    try {
      const fd = openSync(file, 'wx');
      writeSync(fd, JSON.stringify(mine));
      closeSync(fd);
      return () => {
        if (readHolder(file)?.pid === process.pid) unlinkSync(file);
      };
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      const holder = readHolder(file);
      if (holder && holder.pid !== process.pid && alive(holder.pid)) throw new DataDirInUseError(dataDir, holder);
      unlinkSync(file); // stale: its process is gone
    }
  }
  throw new StartupError(`DATA_DIR: could not lock ${dataDir} (another process is starting on it)`);
}

/**
 * Records, in the lock this process holds, the address it serves on, so that whoever finds the
 * folder taken is told where to go instead. Written beside and renamed over the lock (a reader
 * never sees half of it); a lock that is not this process's is left alone.
 */
export function recordServingUrl(dataDir: string, url: string): void {
  const file = lockFile(dataDir);
  const holder = readHolder(file);
  if (holder?.pid !== process.pid) return;
  writeFileSync(`${file}.${process.pid}.tmp`, JSON.stringify({ ...holder, url }));
  renameSync(`${file}.${process.pid}.tmp`, file);
}
