import { spawn, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';

// Every process the suite starts goes through here, so that none outlives the run:
//  - it leads its own process group (detached), so killing the group also kills what it started
//    in turn (the bench runner's servers, npm's build steps);
//  - its pid is recorded in the run's folder (TOLLGATE_RUN_DIR, made by global-setup), where the
//    run's teardown and its SIGINT/SIGTERM handler find it even if the worker that started it died;
//  - it carries TOLLGATE_TEST_CHILD=<run id> in its environment, inherited by its own children,
//    so a last sweep of /proc finds anything of this run that escaped its group (a daemon).
// Each test file kills what it left alive in an afterAll (test/support/after-each-file.ts).

export const CHILD_MARK = 'TOLLGATE_TEST_CHILD';
const runId = () => process.env.TOLLGATE_RUN_ID ?? `solo${process.pid}`;
const pidsDir = () => (process.env.TOLLGATE_RUN_DIR ? path.join(process.env.TOLLGATE_RUN_DIR, 'pids') : null);

/** The environment a tracked child gets: `env` plus this run's mark. */
export const markedEnv = (env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv => ({ ...env, [CHILD_MARK]: runId() });

/** Children this process started and has not seen exit. */
const live = new Set<ChildProcess>();

/** Records a pid started outside `spawnTracked` (none should be) so the run's teardown kills it. */
export function track(pid: number, what: string) {
  const dir = pidsDir();
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(path.join(dir, String(pid)), JSON.stringify({ what, started: startTime(pid) }));
}
function untrack(pid: number) {
  const dir = pidsDir();
  if (dir) rmSync(path.join(dir, String(pid)), { force: true });
}

/** `spawn`, in a process group of its own, recorded until it exits. */
export function spawnTracked(command: string, args: string[], options: SpawnOptions = {}): ChildProcess {
  const child = spawn(command, args, { ...options, env: markedEnv(options.env ?? process.env), detached: true });
  if (child.pid === undefined) return child; // failed to start: its 'error' event says why
  const pid = child.pid;
  live.add(child);
  track(pid, [command, ...args].join(' ').slice(0, 300));
  child.once('exit', () => {
    live.delete(child);
    untrack(pid);
  });
  return child;
}

/**
 * Runs a command to its end, like `execFile`, but as `spawnTracked` does: in a process group of its
 * own, recorded for the run's teardown. Past `timeoutMs` the whole group is killed (execFile's
 * timeout kills only the command, and `npm run x` leaves its node behind); code is then null.
 */
export function execTracked(command: string, args: string[], options: SpawnOptions & { timeoutMs: number }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  const child = spawnTracked(command, args, { ...options, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout?.on('data', (d) => (stdout += d));
  child.stderr?.on('data', (d) => (stderr += d));
  const timer = setTimeout(() => killTree(child.pid!), options.timeoutMs);
  return new Promise((resolve) => {
    child.once('error', (error) => (clearTimeout(timer), resolve({ code: null, stdout, stderr: `${stderr}${error.message}` })));
    child.once('close', (code) => (clearTimeout(timer), resolve({ code, stdout, stderr })));
  });
}

/** Sends `signal` to the process group `pid` leads (and to `pid` itself, should it have left it). */
export function killGroup(pid: number | undefined, signal: NodeJS.Signals = 'SIGKILL') {
  if (!pid) return;
  for (const target of [-pid, pid]) {
    try {
      if (signal === 'SIGKILL') process.kill(target, 'SIGCONT'); // a frozen (SIGSTOPped) one too
      process.kill(target, signal);
    } catch {
      // already gone
    }
  }
}

/** SIGKILLs `pid`'s descendants (each with its group: some lead their own), then `pid`'s group. */
export function killTree(pid: number) {
  for (const child of childrenOf(pid)) killTree(child);
  killGroup(pid);
}

/**
 * Stops `child` and everything it started: `signal` to its group first (SIGTERM: a graceful stop,
 * given `graceMs`), then SIGKILL to whatever is left of the tree. Resolves once `child` has exited.
 */
export async function stopChild(child: ChildProcess | undefined, signal: NodeJS.Signals = 'SIGKILL', graceMs = 10_000) {
  if (!child?.pid) return;
  const exited = child.exitCode !== null || child.signalCode !== null ? Promise.resolve() : new Promise((resolve) => child.once('exit', resolve));
  if (signal !== 'SIGKILL') {
    killGroup(child.pid, signal);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([exited, new Promise((resolve) => (timer = setTimeout(resolve, graceMs)))]);
    clearTimeout(timer);
  }
  killTree(child.pid);
  await exited;
}

/** Kills every child this process started that is still running (each test file's afterAll). */
export async function stopAllChildren() {
  await Promise.all([...live].map((child) => stopChild(child)));
}

/** The same, at once, for a process about to exit (the bench runner on a signal or an error). */
export function killAllChildren() {
  for (const child of live) if (child.pid) killTree(child.pid);
}

/** When `pid` started (clock ticks since boot, /proc/<pid>/stat), to tell it from a later process given the same pid. */
function startTime(pid: number): string | null {
  try {
    // pid (comm) state ppid … starttime is the 22nd field; comm may hold spaces, so count after its ')'.
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] ?? null;
  } catch {
    return null;
  }
}

/** Whether a recorded pid is still the process this run started (not a reused pid). */
function stillOurs(pid: number, recorded: string): boolean {
  let started: string | null = null;
  try {
    started = JSON.parse(recorded).started;
  } catch {
    // unreadable record: decide by what /proc says
  }
  const now = startTime(pid);
  return started === null || now === null ? existsSync(`/proc/${pid}`) || !existsSync('/proc/self') : now === started;
}

/**
 * Whether `pid` carries this run's mark in its environment (false where /proc cannot say).
 * Not for redis-server: it rewrites that memory for its process title. Every redis-server is recorded instead.
 */
function ofThisRun(pid: number): boolean {
  try {
    return readFileSync(`/proc/${pid}/environ`, 'utf8').split('\0').includes(`${CHILD_MARK}=${runId()}`);
  } catch {
    return false;
  }
}

/** Pids of live processes that carry this run's mark (Linux: /proc; elsewhere none). */
export function markedProcesses(): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  return entries.map(Number).filter((pid) => pid !== process.pid && ofThisRun(pid));
}

/**
 * Kills everything this run started that is still alive: each recorded group (checked to be the
 * process recorded, in case its pid was reused), then any marked process left. For the run's teardown
 * and its SIGINT/SIGTERM handler.
 */
export function reapRun(dir = pidsDir()) {
  let recorded: string[] = [];
  try {
    recorded = readdirSync(dir ?? '');
  } catch {
    // nothing recorded
  }
  for (const name of recorded) {
    const pid = Number(name);
    if (pid && stillOurs(pid, readFileSync(path.join(dir!, name), 'utf8'))) killGroup(pid);
  }
  if (dir === pidsDir()) for (const pid of markedProcesses()) killGroup(pid);
}

/**
 * Runs that ended without their teardown (SIGKILL, a second signal mid-teardown, a crash): a run
 * folder `tollgate-run-<jest pid>_<tag>-…` whose jest process is gone. Kills what each recorded
 * (its redis-servers, a cluster) and returns their run ids, for the caller to drop their
 * databases and folders. What no handler can clean is cleaned by the next run on the machine.
 */
export function reapAbandonedRuns(tmp: string): { runId: string; dir: string }[] {
  let names: string[] = [];
  try {
    names = readdirSync(tmp);
  } catch {
    return [];
  }
  const abandoned: { runId: string; dir: string }[] = [];
  for (const name of names) {
    const match = /^tollgate-run-((\d+)_[a-z0-9]+)-/.exec(name);
    if (!match || existsSync(`/proc/${match[2]}`) || !existsSync('/proc/self')) continue;
    const dir = path.join(tmp, name);
    reapRun(path.join(dir, 'pids'));
    abandoned.push({ runId: match[1], dir });
  }
  return abandoned;
}

/** Direct children of `pid` (Linux: /proc; elsewhere none): the run's jest workers, for its signal handler. */
export function childrenOf(pid: number): number[] {
  let entries: string[];
  try {
    entries = readdirSync('/proc').filter((e) => /^\d+$/.test(e));
  } catch {
    return [];
  }
  return entries.map(Number).filter((p) => {
    try {
      // /proc/<pid>/stat: pid (comm) state ppid … — comm may hold spaces, so read after its ')'.
      const stat = readFileSync(`/proc/${p}/stat`, 'utf8');
      return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid;
    } catch {
      return false;
    }
  });
}
