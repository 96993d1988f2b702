import { closeSync, openSync, readFileSync, unlinkSync, writeSync } from 'node:fs';
import path from 'node:path';
import { StartupError } from '../config';

type Holder = { pid: number; purpose: string; startedAt: string };

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM'; // exists, owned by someone else
  }
}

function readHolder(file: string): Holder | null {
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as Holder;
  } catch {
    return null; // unreadable or half-written: treated as stale
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
  const file = `${path.resolve(dataDir)}.lock`;
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
      if (holder && holder.pid !== process.pid && alive(holder.pid)) {
        throw new StartupError(
          `DATA_DIR: the embedded database ${dataDir} is in use by process ${holder.pid} (${holder.purpose}, since ${holder.startedAt}). ` +
            'PGlite allows one process per folder: stop that process first, or use its admin API (npm run keys -- --url http://127.0.0.1:4000 --key <admin key> …).',
        );
      }
      unlinkSync(file); // stale: its process is gone
    }
  }
  throw new StartupError(`DATA_DIR: could not lock ${dataDir} (another process is starting on it)`);
}
