/**
 * `npm run dev` runs scripts/dev.ts through `sh -c` and tsx, and
 * `kill <npm's pid>` reaches only npm and sh: the stack must notice that its
 * launchers are gone and stop.
 */
import { basename } from "node:path";
import { commandLine, isRunning, procStat, processIdentity, type ProcessIdentity } from "./processes.js";

/**
 * Calls `onGone` once npm, sh or tsx above this process is gone (on Linux,
 * through /proc); elsewhere, once the parent is.
 */
export function watchLaunchers(onGone: () => void): void {
  const chain: ProcessIdentity[] = [];
  for (let pid = process.ppid; pid > 1 && chain.length < 8; ) {
    const argv = commandLine(pid);
    const stat = procStat(pid);
    if (argv === undefined || stat === undefined || !isLauncher(argv)) break;
    chain.push(processIdentity(pid));
    pid = stat.ppid;
  }
  const parent = process.ppid;
  const gone =
    procStat(process.pid) === undefined
      ? () => process.ppid !== parent
      : () => chain.some((launcher) => !isRunning(launcher));
  setInterval(() => {
    if (gone()) onGone();
  }, 300).unref();
}

/** npm (its process title is "npm run dev …"), `sh -c "tsx scripts/dev.ts …"`, tsx. */
function isLauncher(argv: string[]): boolean {
  const first = argv[0] ?? "";
  return (
    /^npm( |$)/.test(first) ||
    basename(first) === "npm" ||
    argv.some((arg) => arg.includes("scripts/dev.ts") || arg.endsWith("npm-cli.js"))
  );
}
