/**
 * One live server per data directory: `<dataDir>/server.lock` names the process that holds it (pid,
 * host name, process start time, the address it serves). A second server refuses to start while that
 * process lives; a lock whose process is gone (a SIGKILLed server, a reboot) is stale and taken over.
 */
import { readFileSync } from 'node:fs';
import { mkdir, open, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { hostname } from 'node:os';
import { resolve } from 'node:path';

export const LOCK_FILE = 'server.lock';

/** What the lock file holds. */
export interface DataDirLockInfo {
  readonly pid: number;
  readonly hostname: string;
  /** Start time of the process (Linux: clock ticks since boot, from `/proc/<pid>/stat`), so a reused pid is not mistaken for the holder. */
  readonly processStart?: string;
  /** Where the holder listens, e.g. `http://127.0.0.1:8787`; absent while it is starting. */
  readonly url?: string;
  /** ISO time the lock was taken. */
  readonly since: string;
}

/** Another live process holds the data directory. `holder` says which. */
export class DataDirLockedError extends Error {
  override readonly name = 'DataDirLockedError';
  readonly code = 'ERR_DATA_DIR_LOCKED';
  constructor(
    readonly dataDir: string,
    readonly holder: DataDirLockInfo,
  ) {
    super(
      `data dir ${dataDir} is in use by another gha-cache-mock (pid ${holder.pid}` +
        `${holder.hostname !== hostname() ? ` on ${holder.hostname}` : ''}, ` +
        `${holder.url ? `listening on ${holder.url}` : 'still starting'}, since ${holder.since}); ` +
        `stop it or use another --data-dir`,
    );
  }
}

export interface DataDirLock {
  readonly file: string;
  /** Records the address the holder serves (shown to a second server that is refused). */
  setUrl(url: string): Promise<void>;
  /** Removes the lock file if it is still ours. Idempotent. */
  release(): Promise<void>;
}

/** Start time of a process, or `undefined` where `/proc` is not there. */
function processStartOf(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 22 (starttime), counted after the parenthesised command name, which may hold spaces.
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19];
  } catch {
    return undefined;
  }
}

/** Lock files this process holds now (two in-process servers must not share a data dir either). */
const heldHere = new Set<string>();

function isAlive(info: DataDirLockInfo, file: string): boolean {
  // A lock written on another machine (a shared volume) cannot be checked: treat it as held.
  if (info.hostname !== hostname()) return true;
  if (info.pid === process.pid) return heldHere.has(file);
  try {
    process.kill(info.pid, 0);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ESRCH') return false;
  }
  const start = processStartOf(info.pid);
  return info.processStart === undefined || start === undefined || start === info.processStart;
}

async function readLock(file: string): Promise<DataDirLockInfo | undefined> {
  try {
    const info = JSON.parse(await readFile(file, 'utf8')) as DataDirLockInfo;
    return typeof info.pid === 'number' ? info : undefined;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    return undefined; // torn or foreign content: nobody can be shown to hold it
  }
}

/**
 * Takes `<dataDir>/server.lock` for this process. Throws `DataDirLockedError` when a live process holds
 * it; a stale lock is replaced.
 */
export async function acquireDataDirLock(dataDir: string): Promise<DataDirLock> {
  await mkdir(dataDir, { recursive: true });
  const file = resolve(dataDir, LOCK_FILE);
  const mine: DataDirLockInfo = {
    pid: process.pid,
    hostname: hostname(),
    ...(processStartOf(process.pid) ? { processStart: processStartOf(process.pid)! } : {}),
    since: new Date().toISOString(),
  };
  let info = mine;
  for (let attempt = 0; ; attempt++) {
    try {
      const handle = await open(file, 'wx', 0o644);
      try {
        await handle.writeFile(`${JSON.stringify(mine)}\n`);
      } finally {
        await handle.close();
      }
      heldHere.add(file);
      break;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const holder = await readLock(file);
    if (holder && isAlive(holder, file)) throw new DataDirLockedError(dataDir, holder);
    if (attempt >= 3) throw new Error(`cannot take the lock ${file}: it keeps reappearing`);
    // Stale (or unreadable): move it aside under a unique name, so two starters cannot both remove
    // a lock that a third has just written.
    const aside = `${file}.stale-${process.pid}-${attempt}`;
    await rename(file, aside).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'ENOENT') throw err;
    });
    await rm(aside, { force: true });
  }
  let released = false;
  return {
    file,
    async setUrl(url) {
      if (released) return;
      info = { ...mine, url };
      const tmp = `${file}.${process.pid}.tmp`;
      await writeFile(tmp, `${JSON.stringify(info)}\n`);
      await rename(tmp, file);
    },
    async release() {
      if (released) return;
      released = true;
      heldHere.delete(file);
      const current = await readLock(file);
      if (current?.pid === mine.pid && current.since === mine.since) await rm(file, { force: true });
    },
  };
}
