/**
 * Processes, as /proc shows them on Linux: who runs, who started whom, and
 * process groups to stop as one. Elsewhere, what needs /proc degrades to what
 * `process.kill(pid, 0)` can tell.
 */
import { readFileSync, readdirSync } from "node:fs";

/** What /proc/<pid>/stat says about a process. */
export interface ProcStat {
  readonly pid: number;
  /** R, S, D, Z (zombie: exited, holds nothing, waits to be reaped), … */
  readonly state: string;
  readonly ppid: number;
  readonly pgid: number;
  /** When it started, in clock ticks since boot: with the pid, it names one process even if the pid is reused. */
  readonly start: string;
  /** The executable's name, as the kernel keeps it (at most 15 characters). */
  readonly comm: string;
}

/** /proc/<pid>/stat of one process, or undefined (gone, or no /proc). */
export function procStat(pid: number): ProcStat | undefined {
  try {
    const text = readFileSync(`/proc/${pid}/stat`, "utf8");
    const comm = text.slice(text.indexOf("(") + 1, text.lastIndexOf(")"));
    // After "(comm) ": state ppid pgrp session tty_nr tpgid flags minflt cminflt majflt cmajflt utime stime cutime cstime priority nice num_threads itrealvalue starttime
    const fields = text.slice(text.lastIndexOf(")") + 2).split(" ");
    return {
      pid,
      state: fields[0] ?? "",
      ppid: Number(fields[1]),
      pgid: Number(fields[2]),
      start: fields[19] ?? "",
      comm,
    };
  } catch {
    return undefined;
  }
}

/** Every process, from /proc; undefined where there is no /proc. */
export function procStats(): ProcStat[] | undefined {
  let entries: string[];
  try {
    entries = readdirSync("/proc");
  } catch {
    return undefined;
  }
  return entries.flatMap((entry) => {
    if (!/^\d+$/.test(entry)) return [];
    const stat = procStat(Number(entry));
    return stat === undefined ? [] : [stat];
  });
}

/** A process's arguments, from /proc/<pid>/cmdline; undefined when it is gone or there is no /proc. */
export function commandLine(pid: number): string[] | undefined {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, "utf8")
      .split("\0")
      .filter((arg) => arg !== "");
  } catch {
    return undefined;
  }
}

/** Whether a process has exited (a zombie has: it holds nothing and only waits to be reaped). */
const exited = (stat: ProcStat) => stat.state === "Z" || stat.state === "X";

/** A process, by its pid and (where /proc tells) its start time, so that a reused pid is not taken for it. */
export interface ProcessIdentity {
  readonly pid: number;
  readonly start?: string | undefined;
}

/** The identity of a running process. */
export function processIdentity(pid: number): ProcessIdentity {
  const start = procStat(pid)?.start;
  return start === undefined ? { pid } : { pid, start };
}

/** Whether that very process still runs. */
export function isRunning({ pid, start }: ProcessIdentity): boolean {
  try {
    process.kill(pid, 0);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== "EPERM") return false;
  }
  const stat = procStat(pid);
  if (stat === undefined) return true; // no /proc: the pid is all there is to go by
  return !exited(stat) && (start === undefined || stat.start === start);
}

/** Sends a signal to every process of a group; a group with none left is not an error. */
export function signalGroup(pgid: number, signal: NodeJS.Signals): void {
  try {
    process.kill(-pgid, signal);
  } catch {
    // no process left in the group
  }
}

/** Whether a process of the group still runs. */
export function groupAlive(pgid: number): boolean {
  const stats = procStats();
  if (stats === undefined) {
    try {
      process.kill(-pgid, 0);
      return true;
    } catch {
      return false;
    }
  }
  return stats.some((stat) => stat.pgid === pgid && !exited(stat));
}

/** Resolves true once no process of the group runs, or false after `timeoutMs`. */
export async function groupGone(pgid: number, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (!groupAlive(pgid)) return true;
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
