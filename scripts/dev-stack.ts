import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { createInterface } from "node:readline";
import { fileURLToPath } from "node:url";
import { startFakeBotApi, type FakeBotApi } from "../dev/fake-bot-api.js";
import { startNeonEndpoint, type NeonEndpoint } from "../dev/neon-endpoint.js";
import { startPgliteServer, type PgliteServer } from "../dev/pglite-server.js";
import { botInfo, textMessage } from "../dev/telegram.js";
import { lockDataDir } from "./data-dir-lock.js";
import { groupGone, signalGroup } from "./processes.js";

/** The repository's root. */
export const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Which deployment of the example runs: Neon over HTTP, or pg through Hyperdrive. */
export type Variant = "neon" | "hyperdrive";

/** Options of {@link startDevStack}. */
export interface DevStackOptions {
  /** A PostgreSQL to use; without it, PGlite persisted in `dataDir`. */
  readonly databaseUrl?: string | undefined;
  /** Where PGlite keeps its files; defaults to `.data/pglite`. Locked while the stack runs (see {@link lockDataDir}). */
  readonly dataDir?: string | undefined;
  readonly variant?: Variant | undefined;
  /** The table the bot keeps its state in; defaults to the example's `grammy_sessions`. */
  readonly sessionTable?: string | undefined;
  /** Log one JSON line per storage operation from the worker (its `STORAGE_LOG` variable). */
  readonly storageLog?: boolean | undefined;
  /**
   * Whether {@link DevStack.send} waits for what the worker logs about each
   * update (a moment after the response) and returns it in {@link Exchange.logs}.
   */
  readonly workerLogs?: boolean | undefined;
  /** Every line wrangler prints (its own and the worker's console output, without colours), as it comes; defaults to nowhere. */
  readonly log?: ((line: string) => void) | undefined;
  /** Aborts the start: what was started is stopped, then `startDevStack` rejects. */
  readonly signal?: AbortSignal | undefined;
  /** Called when `wrangler dev` stops on its own after the start (not by `stop` or `restartWorker`). */
  readonly onWorkerExit?: ((error: Error) => void) | undefined;
}

/** What one message to the bot produced. */
export interface Exchange {
  /** The worker's HTTP status. */
  readonly status: number;
  /** What the bot sent back (sendMessage texts), in order. */
  readonly replies: string[];
  /**
   * What the worker printed while it handled the update, as wrangler shows it:
   * its console output, and an uncaught error with its stack. No colours, and
   * without wrangler's request log line. Empty unless the stack was started
   * with `workerLogs`.
   */
  readonly logs: string[];
  /** Whether the worker threw, or called `console.error`, while it handled the update. */
  readonly errorLogged: boolean;
}

/** The whole local stack: database, Neon endpoint, fake Bot API and the worker under `wrangler dev`. */
export interface DevStack {
  readonly databaseUrl: string;
  readonly workerUrl: string;
  readonly api: FakeBotApi;
  /** Sends a text message from the local user, as Telegram would, and waits for the bot (and, with `workerLogs`, for what the worker logged). */
  send(text: string, options?: { secretToken?: string | null; signal?: AbortSignal }): Promise<Exchange>;
  /** Stops the worker and starts a fresh one, as a deploy or an evicted isolate would. */
  restartWorker(): Promise<void>;
  /** Stops everything: every process of `wrangler dev` (workerd and esbuild too), then the servers; idempotent. */
  stop(): Promise<void>;
}

/** The chat the terminal plays: a private chat with user 1001. */
export const LOCAL_CHAT = 1001;
/** The secret token the local worker expects, as Telegram would send it. */
export const LOCAL_SECRET = "local-webhook-secret";

/**
 * Starts everything `npm run dev` needs, on loopback only: PostgreSQL (the
 * server at `databaseUrl`, or PGlite persisted on disk), the local Neon
 * endpoint, a fake Bot API, and the example worker in real workerd.
 */
export async function startDevStack(options: DevStackOptions = {}): Promise<DevStack> {
  const variant = options.variant ?? "neon";
  const signal = options.signal;
  const stops: (() => Promise<void>)[] = [];
  try {
    signal?.throwIfAborted();
    let databaseUrl = options.databaseUrl;
    if (databaseUrl === undefined) {
      const dataDir = resolve(options.dataDir ?? join(root, ".data", "pglite"));
      mkdirSync(dataDir, { recursive: true });
      const unlock = lockDataDir(dataDir);
      stops.push(async () => unlock());
      const pglite: PgliteServer = await startPgliteServer({ dataDir });
      stops.push(pglite.stop);
      databaseUrl = pglite.url;
      signal?.throwIfAborted();
    }
    const neon: NeonEndpoint = await startNeonEndpoint();
    stops.push(neon.stop);
    const api = await startFakeBotApi();
    stops.push(api.stop);
    signal?.throwIfAborted();

    const vars: Record<string, string> = {
      BOT_TOKEN: "123456:local-development",
      BOT_INFO: JSON.stringify(botInfo),
      BOT_API_ROOT: api.apiRoot,
      WEBHOOK_SECRET: LOCAL_SECRET,
      DATABASE_URL: databaseUrl,
      NEON_FETCH_ENDPOINT: `${neon.origin}/sql`,
      ...(options.sessionTable === undefined ? {} : { SESSION_TABLE: options.sessionTable }),
      ...(options.storageLog === true ? { STORAGE_LOG: "1" } : {}),
    };
    // Who hears wrangler's lines: the caller's log, and the exchange in progress.
    const listeners = new Set<(line: string) => void>();
    const onLine = (line: string) => {
      options.log?.(line);
      for (const listener of listeners) listener(line);
    };
    const start = () => startWorker({ variant, vars, databaseUrl, onLine, signal, onExit: options.onWorkerExit });
    const worker = { current: await start() };
    stops.push(() => worker.current.stop());

    let stopping: Promise<void> | undefined;
    return {
      databaseUrl,
      /** Where the worker listens; a restart may change it. */
      get workerUrl() {
        return worker.current.url;
      },
      api,
      async send(text, { secretToken = LOCAL_SECRET, signal: sendSignal } = {}) {
        const before = api.calls.length;
        const logs: string[] = [];
        let answered = false;
        let lastLine = Date.now();
        const listen = (line: string) => {
          lastLine = Date.now();
          const request = REQUEST_LOG.exec(line);
          if (request === null) logs.push(line);
          else if (request[1] === "POST") answered = true;
        };
        if (options.workerLogs) listeners.add(listen);
        let status: number;
        try {
          const response = await fetch(worker.current.url, {
            method: "POST",
            headers: {
              "content-type": "application/json",
              ...(secretToken === null ? {} : { "x-telegram-bot-api-secret-token": secretToken }),
            },
            body: JSON.stringify(textMessage(LOCAL_CHAT, text)),
            ...(sendSignal === undefined ? {} : { signal: sendSignal }),
          });
          await response.arrayBuffer();
          status = response.status;
          // The worker's output comes through wrangler's pipes a moment after
          // the response; wrangler's log line for the request comes last.
          const deadline = Date.now() + 2_000;
          while (listeners.has(listen) && !(answered && Date.now() - lastLine >= 30) && Date.now() < deadline) {
            sendSignal?.throwIfAborted();
            await sleep(10);
          }
        } finally {
          listeners.delete(listen);
        }
        const replies = api.calls
          .slice(before)
          .filter((call) => call.method === "sendMessage")
          .map((call) => String(call.payload.text));
        return { status, replies, logs, errorLogged: logs.some((line) => ERROR_LOG.test(line)) };
      },
      async restartWorker() {
        await worker.current.stop();
        worker.current = await start();
      },
      stop: () => (stopping ??= stopAll(stops)),
    };
  } catch (error) {
    await stopAll(stops);
    throw error;
  }
}

/** wrangler's line for each request it served: `[wrangler:info] POST / 200 OK (23ms)`. */
const REQUEST_LOG = /^\[wrangler:\w+\] ([A-Z]+) \S+ \d{3}\b/;
/** How an error reaches wrangler's output: uncaught (`[wrangler:error]`), or `console.error` (`✘ [ERROR]`). */
const ERROR_LOG = /^(\[wrangler:error\]|✘ \[ERROR\])/;
const ANSI = /\x1b\[[0-9;?]*[A-Za-z]/g;

async function stopAll(stops: (() => Promise<void>)[]): Promise<void> {
  for (const stop of stops.reverse()) await stop().catch(() => {});
}

const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

interface WorkerProcess {
  readonly child: ChildProcess;
  /** `http://127.0.0.1:<port>`, the port wrangler chose. */
  readonly url: string;
  /** Stops the whole process group: wrangler, workerd, esbuild. */
  stop(): Promise<void>;
}

interface WorkerOptions {
  readonly variant: Variant;
  readonly vars: Record<string, string>;
  readonly databaseUrl: string;
  readonly onLine: (line: string) => void;
  readonly signal: AbortSignal | undefined;
  readonly onExit: ((error: Error) => void) | undefined;
}

/** How long wrangler may take to stop on SIGTERM before its whole group is killed. */
const STOP_GRACE_MS = 3_000;
/** Process groups of `wrangler dev` that are running; killed when this process exits, however it exits. */
const liveGroups = new Set<number>();
process.on("exit", () => {
  for (const pgid of liveGroups) signalGroup(pgid, "SIGKILL");
});

/**
 * Runs wrangler in a process group of its own, behind a small guard that is
 * the group's leader: once wrangler exits, the guard kills whatever is left in
 * the group (workerd may ignore SIGTERM), and once this process goes away,
 * however it goes (even by SIGKILL), the guard's stdin closes and it stops the
 * group, so nothing of the stack outlives the process that started it.
 */
const GUARD = `
const { spawn } = require("node:child_process");
const killGroup = () => { try { process.kill(-process.pid, "SIGKILL"); } catch { process.exit(1); } };
for (const signal of ["SIGINT", "SIGTERM", "SIGHUP"]) process.on(signal, () => {});
const wrangler = spawn(process.execPath, process.argv.slice(1), { stdio: ["ignore", "inherit", "inherit"] });
wrangler.on("exit", killGroup);
wrangler.on("error", killGroup);
let orphaned = false;
const orphan = () => {
  if (orphaned) return;
  orphaned = true;
  try { process.kill(-process.pid, "SIGTERM"); } catch {}
  setTimeout(killGroup, ${STOP_GRACE_MS});
};
process.stdin.on("end", orphan);
process.stdin.on("error", orphan);
process.stdin.resume();
`;

/** Runs `wrangler dev` for the variant and resolves once the worker answers. */
async function startWorker({
  variant,
  vars,
  databaseUrl,
  onLine,
  signal,
  onExit,
}: WorkerOptions): Promise<WorkerProcess> {
  const wrangler = join(dirname(createRequire(import.meta.url).resolve("wrangler/package.json")), "bin", "wrangler.js");
  const config =
    variant === "neon" ? join(root, "wrangler.toml") : join(root, "worker-example", "wrangler.hyperdrive.toml");
  // Port 0: wrangler takes free ports itself and says which ("Ready on …"). Ports
  // picked here beforehand could be taken by another process meanwhile.
  const args = [wrangler, "dev", "--config", config, "--ip", "127.0.0.1", "--port", "0", "--inspector-port", "0"];
  for (const [name, value] of Object.entries(vars)) args.push("--var", `${name}:${value}`);
  const groups = process.platform !== "win32";
  const child = spawn(process.execPath, groups ? ["-e", GUARD, "--", ...args] : args, {
    cwd: root,
    env: {
      ...process.env,
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      WRANGLER_SEND_METRICS: "false",
      CLOUDFLARE_HYPERDRIVE_LOCAL_CONNECTION_STRING_HYPERDRIVE: withPassword(databaseUrl),
      // Never prompt: the dev stack owns the terminal.
      CI: "true",
    },
    stdio: [groups ? "pipe" : "ignore", "pipe", "pipe"],
    detached: groups,
  });
  const pgid = groups ? child.pid : undefined;
  if (pgid !== undefined) liveGroups.add(pgid);

  const output: string[] = [];
  let port: number | undefined;
  for (const stream of [child.stdout, child.stderr]) {
    if (stream === null) continue;
    createInterface({ input: stream, crlfDelay: Infinity }).on("line", (raw) => {
      const line = raw.replace(ANSI, "").trimEnd();
      if (line.trim() === "") return;
      output.push(line);
      if (output.length > 200) output.shift();
      port ??= readyPort(line);
      onLine(line);
    });
  }

  let ready = false;
  let stopping: Promise<void> | undefined;
  const stop = () => (stopping ??= stopGroup(child, pgid));
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.once("error", () => {});
  void exited.then(async () => {
    if (stopping !== undefined) return;
    await stop(); // whatever wrangler left behind
    if (ready) onExit?.(new Error(`wrangler dev stopped on its own:\n${output.slice(-30).join("\n")}`));
  });

  const deadline = Date.now() + 90_000;
  const waiting = (async () => {
    for (;;) {
      if (port !== undefined) {
        try {
          // Our worker answers a GET with 405; anything else is wrangler still starting.
          const response = await fetch(`http://127.0.0.1:${port}`, { signal: AbortSignal.timeout(2_000) });
          await response.arrayBuffer();
          if (response.status === 405) return port;
        } catch {
          // not listening yet
        }
      }
      if (Date.now() > deadline) throw new Error(`wrangler dev did not answer within 90 s:\n${output.join("\n")}`);
      await sleep(250);
    }
  })();
  const failed = exited.then(() => {
    throw new Error(`wrangler dev stopped before the worker was ready:\n${output.join("\n")}`);
  });
  const aborted = new Promise<never>((_, reject) => {
    if (signal === undefined) return;
    if (signal.aborted) reject(signal.reason);
    signal.addEventListener("abort", () => reject(signal.reason), { once: true });
  });
  let url: string;
  try {
    url = `http://127.0.0.1:${await Promise.race([waiting, failed, aborted])}`;
    ready = true;
  } catch (error) {
    await stop();
    throw error;
  } finally {
    failed.catch(() => {});
    aborted.catch(() => {});
    waiting.catch(() => {});
  }
  return { child, url, stop };
}

/** The port in wrangler's "[wrangler:info] Ready on http://127.0.0.1:8787". */
function readyPort(line: string): number | undefined {
  const match = /^\[wrangler:\w+\] Ready on https?:\/\/[^\s/]*:(\d+)/.exec(line);
  return match?.[1] === undefined ? undefined : Number(match[1]);
}

/**
 * Stops wrangler's process group: SIGTERM to all of it, then SIGKILL to what
 * is left after a grace period; resolves once no process of the group is left.
 */
async function stopGroup(child: ChildProcess, pgid: number | undefined): Promise<void> {
  if (pgid === undefined) {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
    child.kill("SIGTERM");
    const timer = setTimeout(() => child.kill("SIGKILL"), STOP_GRACE_MS);
    await exited;
    clearTimeout(timer);
    return;
  }
  signalGroup(pgid, "SIGTERM");
  if (!(await groupGone(pgid, STOP_GRACE_MS))) {
    signalGroup(pgid, "SIGKILL");
    await groupGone(pgid, 10_000);
  }
  liveGroups.delete(pgid);
  child.stdin?.destroy();
}

/**
 * Hyperdrive's local mode insists on a password in the connection string;
 * the local servers trust loopback and ignore it.
 */
function withPassword(url: string): string {
  const parsed = new URL(url);
  if (parsed.password === "") parsed.password = "local";
  return parsed.href;
}

/** A port nothing listens on right now, on loopback. */
export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => {
      const address = server.address();
      server.close(() => resolve(typeof address === "object" && address !== null ? address.port : 0));
    });
  });
}
