import { spawn, spawnSync, type ChildProcess } from "node:child_process";
import { randomUUID } from "node:crypto";
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { availableParallelism, tmpdir } from "node:os";
import { join } from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { DataDirInUseError, lockDataDir } from "../scripts/data-dir-lock.js";
import { freePort, root } from "../scripts/dev-stack.js";
import { isRunning } from "../scripts/processes.js";
import {
  descendantsOf,
  hasProc,
  isLoopback,
  listenersOf,
  portIsFree,
  readProc,
  withEnvironment,
  type Proc,
} from "./support/process-tree.js";

// `npm run dev` as a user runs it, in a process group of its own, ended every
// way it can end. After each, no process it started may be left (wrangler,
// workerd, esbuild: found by walking the process tree while it runs, and by an
// environment variable every one of them inherits), and the ports they
// listened on (all on loopback) must be free.

const temporary = mkdtempSync(join(tmpdir(), "dev-stack-test-"));
const runs: Run[] = [];
afterAll(async () => {
  for (const run of runs) run.kill();
  rmSync(temporary, { recursive: true, force: true });
});

const MARKER = "DEV_STACK_TEST_RUN";
const tsx = join(root, "node_modules", "tsx", "dist", "cli.mjs");
const hasScript = spawnSync("script", ["--version"]).status === 0;

interface Run {
  readonly child: ChildProcess;
  readonly marker: string;
  /** Every process seen below the run, by pid:start. */
  readonly seen: Map<string, Proc>;
  /** Every port a process of the run listened on, with its address. */
  readonly ports: Map<number, string>;
  /** Resolves once every process writing to the run's stdout and stderr has exited and all they wrote is read. */
  closed(): Promise<void>;
  /** How it exited; rejects, with what it printed and what still runs, if it has not within `ms`. */
  ended(ms?: number): Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stdout(): string;
  stderr(): string;
  /** Waits for output matching; rejects if the run exits first, or after `ms`. */
  waitFor(pattern: RegExp, stream?: "stdout" | "stderr", ms?: number): Promise<void>;
  /** The node process running scripts/dev.ts. */
  dev(): Proc | undefined;
  /** A seen process matching, still running. */
  find(test: (proc: Proc) => boolean): Proc | undefined;
  kill(): void;
}

interface RunOptions {
  /** How to start it: `npm run dev --`, or tsx directly (exit codes are dev.ts's own). */
  readonly via?: "npm" | "tsx";
  /** A shell command line instead, with $DEV standing for the command (`via`) and its arguments. */
  readonly shell?: string;
  /** In a pseudo-terminal, through util-linux `script`. */
  readonly tty?: boolean;
  /** Without it, DATABASE_URL is unset: PGlite. */
  readonly databaseUrl?: string;
  /** Written to stdin; stdin stays open unless `end`. */
  readonly input?: string;
  readonly end?: boolean;
}

function run(args: string[], options: RunOptions = {}): Run {
  const marker = randomUUID();
  const env: NodeJS.ProcessEnv = {
    ...process.env,
    [MARKER]: marker,
    CLOUDFLARE_CF_FETCH_ENABLED: "false",
    WRANGLER_SEND_METRICS: "false",
  };
  delete env.DATABASE_URL;
  if (options.databaseUrl !== undefined) env.DATABASE_URL = options.databaseUrl;
  const quote = (arg: string) => `'${arg.replace(/'/g, "'\\''")}'`;
  const tsxCommand = [process.execPath, tsx, "scripts/dev.ts"];
  let command: string;
  let commandArgs: string[];
  if (options.shell !== undefined || options.tty) {
    const dev = [...(options.via === "tsx" ? tsxCommand : ["npm", "run", "dev", "--"]), ...args].map(quote).join(" ");
    const line = (options.shell ?? "$DEV").replace("$DEV", dev);
    [command, commandArgs] = options.tty ? ["script", ["-qec", line, "/dev/null"]] : ["sh", ["-c", line]];
  } else if (options.via === "tsx") {
    [command, commandArgs] = [process.execPath, [...tsxCommand.slice(1), ...args]];
  } else {
    [command, commandArgs] = ["npm", ["run", "dev", "--", ...args]];
  }
  const child = spawn(command, commandArgs, { cwd: root, env, detached: true, stdio: ["pipe", "pipe", "pipe"] });
  let stdout = "";
  let stderr = "";
  const waiters = new Set<() => void>();
  const changed = () => {
    for (const waiter of waiters) waiter();
  };
  child.stdout?.on("data", (chunk: Buffer) => {
    stdout += chunk.toString("utf8");
    changed();
  });
  child.stderr?.on("data", (chunk: Buffer) => {
    stderr += chunk.toString("utf8");
    changed();
  });
  child.stdin?.on("error", () => {});
  if (options.input !== undefined) child.stdin?.write(options.input);
  if (options.end) child.stdin?.end();

  const seen = new Map<string, Proc>();
  const ports = new Map<number, string>();
  const watch = () => {
    if (child.pid === undefined) return;
    const procs = descendantsOf(child.pid);
    for (const proc of procs) {
      // A process on its way out has an empty command line: keep the last one seen.
      const key = `${proc.pid}:${proc.start}`;
      seen.set(key, proc.argv.length > 0 ? proc : { ...proc, argv: seen.get(key)?.argv ?? [] });
    }
    for (const listener of listenersOf(procs.map((proc) => proc.pid))) ports.set(listener.port, listener.host);
  };
  const timer = setInterval(watch, 50);
  let exited = false;
  // 'close': every process holding the run's stdout and stderr has exited, and all they wrote has been read.
  const closed = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.once("exit", (code, signal) => {
      exited = true;
      clearInterval(timer);
      changed();
      resolve({ code, signal });
    }),
  );
  const report = (what: string) => {
    const running = [...seen.values()]
      .filter(isRunning)
      .map((proc) => `  ${proc.pid} ${proc.argv.join(" ").slice(0, 100)}`);
    return new Error(`${what}\n--- stdout\n${stdout}\n--- stderr\n${stderr}\n--- still running\n${running.join("\n")}`);
  };
  const handle: Run = {
    child,
    marker,
    seen,
    ports,
    ended(ms = 60_000) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(report(`still running after ${ms} ms`)), ms);
      });
      return Promise.race([exit, late]).finally(() => clearTimeout(timer));
    },
    closed: () => closed,
    stdout: () => stdout,
    stderr: () => stderr,
    waitFor(pattern, stream, ms = 45_000) {
      const test = () =>
        pattern.test(stream === "stdout" ? stdout : stream === "stderr" ? stderr : `${stdout}\n${stderr}`);
      return new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(report(`${pattern} did not appear within ${ms} ms`));
        }, ms);
        const check = () => {
          if (test()) {
            waiters.delete(check);
            clearTimeout(timer);
            resolve();
          } else if (exited) {
            waiters.delete(check);
            clearTimeout(timer);
            reject(report(`exited before ${pattern} appeared`));
          }
        };
        waiters.add(check);
        check();
      });
    },
    dev: () =>
      handle.find(
        (proc) =>
          proc.comm === "node" &&
          proc.argv.some((arg) => arg.endsWith("preflight.cjs")) &&
          proc.argv.includes("scripts/dev.ts"),
      ),
    find(test) {
      watch();
      return [...seen.values()].find((proc) => test(proc) && isRunning(proc));
    },
    kill() {
      if (child.pid === undefined) return;
      for (const pid of [...[...seen.values()].filter(isRunning).map((proc) => proc.pid), -child.pid]) {
        try {
          process.kill(pid, "SIGKILL");
        } catch {
          // gone
        }
      }
    },
  };
  runs.push(handle);
  return handle;
}

const isWorkerd = (proc: Proc) => proc.comm === "workerd";
const isWrangler = (proc: Proc) =>
  proc.argv.some((arg) => /wrangler[\\/](bin[\\/]wrangler\.js|wrangler-dist[\\/]cli\.js)$/.test(arg));

/** Waits until no process of the run is left, then checks what they listened on. */
async function expectNothingLeft(
  run: Run,
  { started = true as boolean | "wrangler", withinMs = 15_000 } = {},
): Promise<void> {
  const deadline = Date.now() + withinMs;
  let left: Proc[] = [];
  for (;;) {
    left = [...run.seen.values()].filter(isRunning);
    for (const proc of withEnvironment(MARKER, run.marker))
      if (!left.some((other) => other.pid === proc.pid)) left.push(proc);
    if (left.length === 0 || Date.now() > deadline) break;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  expect(
    left.map((proc) => `${proc.pid} ${proc.argv.join(" ").slice(0, 120)}`),
    `processes left behind\n--- stdout\n${run.stdout()}\n--- stderr\n${run.stderr()}`,
  ).toStrictEqual([]);
  await run.closed(); // all output read
  const seen = [...run.seen.values()];
  if (started === "wrangler") {
    expect(seen.some(isWrangler), "wrangler was seen running").toBe(true);
  } else if (started) {
    expect(seen.some(isWrangler), "wrangler was seen running").toBe(true);
    expect(seen.some(isWorkerd), "workerd was seen running").toBe(true);
    expect(run.ports.size, "the stack's listening ports were seen").toBeGreaterThan(0);
  } else {
    expect(seen.filter((proc) => isWrangler(proc) || isWorkerd(proc))).toStrictEqual([]);
  }
  for (const [port, host] of run.ports) {
    expect(isLoopback(host), `port ${port} listened on ${host}`).toBe(true);
    // Free once the stack is gone, though the kernel may take a moment, and another test's socket can briefly hold it.
    let free = await portIsFree(port);
    for (const until = Date.now() + 5_000; !free && Date.now() < until; free = await portIsFree(port)) {
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    expect(free, `port ${port} is free again`).toBe(true);
  }
}

/** A database URL nothing answers at. */
const unreachable = async () => `postgres://postgres@127.0.0.1:${await freePort()}/nowhere`;

function scriptFile(lines: string[]): string {
  const path = join(temporary, `${randomUUID()}.txt`);
  writeFileSync(path, `# a test chat\n${lines.join("\n")}\n`);
  return path;
}

const dataDir = () => join(temporary, randomUUID());

// Each stack takes a few seconds of CPU to start (wrangler, workerd, esbuild):
// run as many at once as there are cores, no more, so that none starves.
const slots = { free: Math.max(1, availableParallelism()), waiting: [] as (() => void)[] };
async function inSlot(body: () => Promise<void>): Promise<void> {
  if (slots.free > 0) slots.free -= 1;
  else await new Promise<void>((resolve) => slots.waiting.push(resolve));
  try {
    await body();
  } finally {
    const next = slots.waiting.shift();
    if (next === undefined) slots.free += 1;
    else next();
  }
}
/** A test that starts stacks, in a slot, with room for a slow machine. */
const stackIt = (name: string, body: () => Promise<void>) => it(name, () => inSlot(body), 120_000);

describe.runIf(hasProc).concurrent("npm run dev", () => {
  it("prints usage for --help, and refuses an unknown flag or a missing script before starting anything", async () => {
    const help = run(["--help"], { via: "tsx" });
    expect(await help.ended()).toStrictEqual({ code: 0, signal: null });
    for (const flag of ["--script", "--data-dir", "--hyperdrive", "--verbose", "--help"])
      expect(help.stdout()).toContain(flag);

    const unknown = run(["--no-such-flag"], { via: "tsx" });
    expect(await unknown.ended()).toStrictEqual({ code: 2, signal: null });
    expect(unknown.stderr()).toMatch(/no-such-flag[\s\S]*usage: npm run dev/);

    const missing = run(["--script", join(temporary, "missing.txt")], { via: "tsx" });
    expect(await missing.ended()).toStrictEqual({ code: 2, signal: null });
    expect(missing.stderr()).toMatch(/cannot read the script: .*ENOENT/);
    await expectNothingLeft(missing, { started: false });

    const file = scriptFile([]);
    const notADirectory = run(["--data-dir", file], { via: "tsx", input: "/start\n", end: true });
    expect(await notADirectory.ended()).toStrictEqual({ code: 1, signal: null });
    expect(notADirectory.stderr()).toMatch(/dev stack failed to start: .*EEXIST/);
    await expectNothingLeft(notADirectory, { started: false });
  });

  stackIt("--script: shows the worker's error on stderr, once, and exits 1 when a line fails", async () => {
    const dev = run(["--script", scriptFile(["/start", "/me", "/form"])], {
      via: "tsx",
      databaseUrl: await unreachable(),
    });
    expect(await dev.ended()).toStrictEqual({ code: 1, signal: null });
    expect(dev.stdout().match(/^\(the worker answered HTTP 500\)$/gm)).toHaveLength(3);
    expect(dev.stdout()).toMatch(/^you> \/start\n\(the worker answered HTTP 500\)\nyou> \/me\n/m);
    // The cause, as the worker logged it: PostgresStorageError with the driver's reason, no stack frames.
    expect(dev.stderr()).toMatch(/^\[worker\] .*PostgresStorageError.*ECONNREFUSED/m);
    expect(dev.stderr()).not.toMatch(/^\[worker\]\s+at /m);
    expect(dev.stderr().match(/^\[worker\] \(the same as above\)$/gm)).toHaveLength(2);
    expect(dev.stderr()).toContain("3 of 3 messages failed");
    await expectNothingLeft(dev);
  });

  stackIt(
    "piped stdin works like --script (exit 0), and a second stack on the same data dir refuses while the first runs",
    async () => {
      const directory = dataDir();
      const first = run(["--data-dir", directory], { via: "tsx", input: "/start\n" });
      await first.waitFor(/^bot> Hello!/m, "stdout");
      expect(first.stdout()).toMatch(/^you> \/start\nbot> Hello!/m);
      expect(existsSync(`${directory}.lock`)).toBe(true);

      const second = run(["--data-dir", directory], { via: "tsx", input: "/start\n", end: true });
      expect(await second.ended()).toStrictEqual({ code: 1, signal: null });
      expect(second.stderr()).toContain(`${directory} is in use by another npm run dev (pid ${first.dev()?.pid})`);
      expect(second.stdout()).toBe("");
      await expectNothingLeft(second, { started: false });

      // The first is unharmed; end of input ends it.
      first.child.stdin?.end("/me\n");
      expect((await first.ended()).code).toBe(0);
      expect(first.stdout()).toMatch(/^you> \/me\nbot> /m);
      await expectNothingLeft(first);
      expect(existsSync(`${directory}.lock`)).toBe(false);
    },
  );

  stackIt("stops everything when its output closes: npm run dev -- --script … | head -6", async () => {
    const lines = Array.from({ length: 40 }, (_, index) => `message ${index}`);
    const dev = run(["--script", scriptFile(lines)], {
      via: "tsx",
      shell: "$DEV | head -6",
      databaseUrl: await unreachable(),
    });
    expect(await dev.ended()).toStrictEqual({ code: 0, signal: null });
    expect(dev.stdout()).toBe(
      `${[0, 1, 2].map((index) => `you> message ${index}\n(the worker answered HTTP 500)\n`).join("")}`,
    );
    await expectNothingLeft(dev);
    expect(dev.stderr()).not.toContain("40 of");
  });

  stackIt("stops everything on Ctrl-C at a plain terminal: SIGINT to the whole foreground process group", async () => {
    const dev = run([], { databaseUrl: await unreachable() });
    await dev.waitFor(/Worker ready/, "stderr");
    process.kill(-(dev.child.pid ?? 0), "SIGINT");
    await dev.ended();
    await expectNothingLeft(dev);
    expect(dev.stderr()).toContain("(SIGINT: stopping)");
  });

  stackIt("stops everything on SIGTERM to npm alone (`kill <npm's pid>`), which never reaches dev.ts", async () => {
    // A long script, not stdin: once npm exits, Node closes the stdin it gave npm, and that would end dev.ts too.
    const lines = Array.from({ length: 1_000 }, (_, index) => `message ${index}`);
    const dev = run(["--script", scriptFile(lines)], { databaseUrl: await unreachable() });
    await dev.waitFor(/^you> message 1$/m, "stdout");
    process.kill(dev.child.pid ?? 0, "SIGTERM");
    await dev.ended();
    await expectNothingLeft(dev);
    expect(`${dev.stderr()}\n--- stdout\n${dev.stdout()}`).toContain("(npm run dev was stopped: stopping)");
    expect(dev.stdout()).not.toContain("message 999");
  });

  stackIt("stops everything on SIGHUP to the process group (the terminal closed)", async () => {
    const dev = run([], { via: "tsx", databaseUrl: await unreachable() });
    await dev.waitFor(/Worker ready/, "stderr");
    process.kill(-(dev.child.pid ?? 0), "SIGHUP");
    await dev.ended();
    await expectNothingLeft(dev);
    expect(dev.stderr()).toContain("(SIGHUP: stopping)");
  });

  stackIt("stops what it started when interrupted while starting (SIGTERM before the worker is ready)", async () => {
    const dev = run([], { via: "tsx", databaseUrl: await unreachable() });
    while (dev.find(isWorkerd) === undefined) {
      if (dev.stderr().includes("Worker ready") || dev.child.exitCode !== null)
        throw new Error(`no workerd seen while starting:\n${dev.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    process.kill(dev.dev()?.pid ?? 0, "SIGTERM");
    expect(await dev.ended()).toStrictEqual({ code: 143, signal: null });
    expect(dev.stderr()).not.toContain("Worker ready");
    await expectNothingLeft(dev);
  });

  stackIt("exits 1 and stops the rest when wrangler dies while starting", async () => {
    const dev = run([], { via: "tsx", databaseUrl: await unreachable() });
    const isWranglerCli = (proc: Proc) => proc.argv.some((arg) => arg.endsWith("wrangler-dist/cli.js"));
    while (dev.find(isWranglerCli) === undefined) {
      if (dev.stderr().includes("Worker ready") || dev.child.exitCode !== null)
        throw new Error(`no wrangler seen while starting:\n${dev.stderr()}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
    process.kill(dev.find(isWranglerCli)?.pid ?? 0, "SIGKILL");
    expect(await dev.ended()).toStrictEqual({ code: 1, signal: null });
    expect(dev.stderr()).toContain("dev stack failed to start: wrangler dev stopped before the worker was ready");
    await expectNothingLeft(dev, { started: "wrangler" });
  });

  stackIt(
    "leaves nothing behind even when dev.ts is killed with SIGKILL (the guard stops wrangler's group)",
    async () => {
      const dev = run([], { via: "tsx", databaseUrl: await unreachable() });
      await dev.waitFor(/Worker ready/, "stderr");
      process.kill(dev.dev()?.pid ?? 0, "SIGKILL");
      await dev.ended();
      await expectNothingLeft(dev);
    },
  );

  stackIt("exits 1 and says so when wrangler dies under it", async () => {
    const dev = run([], { via: "tsx", databaseUrl: await unreachable() });
    await dev.waitFor(/Worker ready/, "stderr");
    const wrangler = dev.find((proc) => proc.argv.some((arg) => arg.endsWith("wrangler-dist/cli.js")));
    expect(wrangler).toBeDefined();
    process.kill(wrangler?.pid ?? 0, "SIGKILL");
    expect(await dev.ended()).toStrictEqual({ code: 1, signal: null });
    expect(dev.stderr()).toContain("dev stack failed: wrangler dev stopped on its own");
    await expectNothingLeft(dev);
  });

  describe.runIf(hasScript)("in a terminal (a pseudo-terminal through `script`)", () => {
    stackIt("Ctrl-D ends the chat, with exit 1 when a message failed; the worker's error is shown", async () => {
      const dev = run([], { via: "tsx", tty: true, databaseUrl: await unreachable() });
      await dev.waitFor(/you> /); // readline's prompt: the terminal is in raw mode, Ctrl-C and Ctrl-D are keys
      dev.child.stdin?.write("/start\r");
      await dev.waitFor(/\(the worker answered HTTP 500\)/);
      dev.child.stdin?.write("\x04");
      expect(await dev.ended()).toStrictEqual({ code: 1, signal: null });
      expect(dev.stdout()).toMatch(/\[worker\] .*PostgresStorageError/);
      await expectNothingLeft(dev);
    });

    stackIt("Ctrl-C ends the chat, with exit 0 when no message failed", async () => {
      const dev = run([], { via: "tsx", tty: true, databaseUrl: await unreachable() });
      await dev.waitFor(/you> /); // readline's prompt: the terminal is in raw mode, Ctrl-C and Ctrl-D are keys
      dev.child.stdin?.write("\x03");
      expect(await dev.ended()).toStrictEqual({ code: 0, signal: null });
      await expectNothingLeft(dev);
    });
  });
});

describe("lockDataDir", () => {
  it("lets one holder at a time have a directory, and gives it back", () => {
    const directory = dataDir();
    const release = lockDataDir(directory);
    expect(() => lockDataDir(directory)).toThrow(DataDirInUseError);
    expect(() => lockDataDir(directory)).toThrow(`in use by another npm run dev (pid ${process.pid})`);
    release();
    expect(existsSync(`${directory}.lock`)).toBe(false);
    lockDataDir(directory)();
  });

  it("takes over a stale lock: its process is gone, its pid was reused, or it is unreadable", () => {
    const directory = dataDir();
    const gone = spawnSync(process.execPath, ["-e", "console.log(process.pid)"], { encoding: "utf8" });
    const stale = [
      JSON.stringify({ pid: Number(gone.stdout.trim()) }),
      JSON.stringify({ pid: process.pid, start: "1" }), // this pid, but another process's start time
      "garbage",
    ];
    for (const content of stale) {
      writeFileSync(`${directory}.lock`, content);
      const release = lockDataDir(directory);
      expect(JSON.parse(readFileSync(`${directory}.lock`, "utf8")).pid).toBe(process.pid);
      release();
    }
    expect(readProc(process.pid)?.start).toBeDefined();
  });
});
