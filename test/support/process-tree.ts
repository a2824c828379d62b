import { readFileSync, readdirSync, readlinkSync } from "node:fs";
import { createServer } from "node:net";
import { commandLine, procStat, procStats, type ProcStat } from "../../scripts/processes.js";

/** One process, from /proc (Linux), with its arguments. */
export interface Proc extends ProcStat {
  readonly argv: string[];
}

/** Whether this machine has /proc, which the process checks need. */
export const hasProc = procStat(process.pid) !== undefined;

export function readProc(pid: number, { argv = true } = {}): Proc | undefined {
  const stat = procStat(pid);
  return stat === undefined ? undefined : { ...stat, argv: argv ? readArgv(pid) : [] };
}

/** A process's arguments; none once it is gone. */
const readArgv = (pid: number): string[] => commandLine(pid) ?? [];

/** Every process; `argv` is left empty unless asked for. */
export function allProcs({ argv = false } = {}): Proc[] {
  return (procStats() ?? []).map((stat) => ({ ...stat, argv: argv ? readArgv(stat.pid) : [] }));
}

/** The processes below `pid`, however deep. */
export function descendantsOf(pid: number, procs: Proc[] = allProcs()): Proc[] {
  const children = new Map<number, Proc[]>();
  for (const proc of procs) children.set(proc.ppid, [...(children.get(proc.ppid) ?? []), proc]);
  const found: Proc[] = [];
  const queue = [pid];
  while (queue.length > 0) {
    for (const child of children.get(queue.shift() ?? -1) ?? []) {
      found.push({ ...child, argv: readArgv(child.pid) });
      queue.push(child.pid);
    }
  }
  return found;
}

/** Running processes whose environment holds `name=value` (inherited by everything a process starts). */
export function withEnvironment(name: string, value: string): Proc[] {
  const needle = `${name}=${value}`;
  return allProcs()
    .filter((proc) => {
      if (proc.state === "Z" || proc.state === "X") return false;
      try {
        return readFileSync(`/proc/${proc.pid}/environ`, "utf8").split("\0").includes(needle);
      } catch {
        return false;
      }
    })
    .map((proc) => ({ ...proc, argv: readArgv(proc.pid) }));
}

/** A TCP socket a process listens on. */
export interface Listener {
  readonly pid: number;
  readonly host: string;
  readonly port: number;
}

/** The TCP sockets these processes listen on (IPv4 and IPv6). */
export function listenersOf(pids: number[]): Listener[] {
  const owner = new Map<string, number>();
  for (const pid of pids) {
    let fds: string[];
    try {
      fds = readdirSync(`/proc/${pid}/fd`);
    } catch {
      continue;
    }
    for (const fd of fds) {
      try {
        const match = /^socket:\[(\d+)\]$/.exec(readlinkSync(`/proc/${pid}/fd/${fd}`));
        if (match?.[1] !== undefined) owner.set(match[1], pid);
      } catch {
        // closed meanwhile
      }
    }
  }
  const found: Listener[] = [];
  for (const [file, decode] of [
    ["/proc/net/tcp", ipv4],
    ["/proc/net/tcp6", ipv6],
  ] as const) {
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch {
      continue;
    }
    for (const line of text.split("\n").slice(1)) {
      const fields = line.trim().split(/\s+/);
      const [local, state, inode] = [fields[1], fields[3], fields[9]];
      if (local === undefined || state !== "0A" || inode === undefined) continue; // 0A: LISTEN
      const pid = owner.get(inode);
      if (pid === undefined) continue;
      const [address = "", port = "0"] = local.split(":");
      found.push({ pid, host: decode(address), port: Number.parseInt(port, 16) });
    }
  }
  return found;
}

function ipv4(hex: string): string {
  const bytes = Buffer.from(hex, "hex");
  return [...bytes].reverse().join(".");
}

function ipv6(hex: string): string {
  // Four 32-bit words, each in host (little-endian) order.
  const bytes = Buffer.from(hex, "hex");
  for (let word = 0; word < 16; word += 4) bytes.subarray(word, word + 4).reverse();
  if (bytes.subarray(0, 10).every((byte) => byte === 0) && bytes[10] === 0xff && bytes[11] === 0xff) {
    return `::ffff:${[...bytes.subarray(12)].join(".")}`;
  }
  const groups: string[] = [];
  for (let index = 0; index < 16; index += 2) groups.push(bytes.readUInt16BE(index).toString(16));
  return groups.join(":").replace(/(^|:)0(:0)+(:|$)/, "::");
}

/** 127.0.0.0/8, ::1, or 127.x mapped into IPv6. */
export function isLoopback(host: string): boolean {
  return /^127\./.test(host) || /^::ffff:127\./.test(host) || host === "::1";
}

/** Whether something may listen on this loopback port now, i.e. nothing holds it. */
export async function portIsFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const server = createServer();
    server.once("error", () => resolve(false));
    server.listen(port, "127.0.0.1", () => server.close(() => resolve(true)));
  });
}
