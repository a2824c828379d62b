/**
 * One dev stack per PGlite directory: PGlite is one process's database, and
 * two processes on the same files would each see only their own state and
 * overwrite each other's when they stop.
 */
import { linkSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { resolve } from "node:path";
import { isRunning, processIdentity, type ProcessIdentity } from "./processes.js";

/** PGlite's directory is in use by another running dev stack. */
export class DataDirInUseError extends Error {
  override readonly name = "DataDirInUseError";
  constructor(
    readonly dataDir: string,
    readonly pid: number,
  ) {
    super(
      `${dataDir} is in use by another npm run dev (pid ${pid}); PGlite is one process's database, and two would ` +
        `overwrite each other's state. Stop that one first, or give this one a directory of its own ` +
        `(npm run dev -- --data-dir .data/other), or set DATABASE_URL to use a PostgreSQL server.`,
    );
  }
}

/** Locks this process holds; released when it exits, however it exits short of SIGKILL. */
const heldLocks = new Set<() => void>();
process.on("exit", () => {
  for (const release of heldLocks) release();
});

/**
 * Takes `<dataDir>.lock`, holding this process's pid and start time, or throws
 * {@link DataDirInUseError} if a running process holds it. A lock whose process
 * is gone (it was killed) is stale and taken over. Returns the release, which
 * also runs when this process exits.
 */
export function lockDataDir(dataDir: string): () => void {
  const path = `${resolve(dataDir)}.lock`;
  const mine = JSON.stringify(processIdentity(process.pid));
  // Written whole to a file of our own, then linked into place: a lock is never seen half-written.
  const draft = `${path}.${process.pid}.${Date.now()}`;
  writeFileSync(draft, `${mine}\n`);
  try {
    for (let attempt = 0; ; attempt += 1) {
      try {
        linkSync(draft, path);
        break;
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "EEXIST" || attempt >= 10) throw error;
      }
      const held = readText(path);
      if (held === undefined) continue; // released meanwhile
      const holder = parseIdentity(held);
      if (holder !== undefined && isRunning(holder)) throw new DataDirInUseError(dataDir, holder.pid);
      // Stale: remove it, unless another process took it over meanwhile.
      if (readText(path) === held) rmSync(path, { force: true });
    }
  } finally {
    rmSync(draft, { force: true });
  }
  let released = false;
  const release = () => {
    if (released) return;
    released = true;
    heldLocks.delete(release);
    if (readText(path) === mine) rmSync(path, { force: true });
  };
  heldLocks.add(release);
  return release;
}

function readText(path: string): string | undefined {
  try {
    return readFileSync(path, "utf8").trim();
  } catch {
    return undefined;
  }
}

function parseIdentity(text: string): ProcessIdentity | undefined {
  try {
    const value = JSON.parse(text) as { pid?: unknown; start?: unknown };
    if (typeof value.pid !== "number" || !Number.isInteger(value.pid) || value.pid <= 0) return undefined;
    return { pid: value.pid, start: typeof value.start === "string" ? value.start : undefined };
  } catch {
    return undefined;
  }
}
