import { spawn, type ChildProcess } from "node:child_process";
import { mkdirSync } from "node:fs";
import { createRequire } from "node:module";
import { createServer } from "node:net";
import { dirname, join, resolve } from "node:path";
import { fileURLToPath } from "node:url";
import { startFakeBotApi, type FakeBotApi } from "../test/support/fake-bot-api.js";
import { startNeonEndpoint, type NeonEndpoint } from "../test/support/neon-endpoint.js";
import { startPgliteServer, type PgliteServer } from "../test/support/pglite-server.js";
import { botInfo, textMessage } from "../test/support/telegram.js";

/** The repository's root. */
export const root = resolve(dirname(fileURLToPath(import.meta.url)), "..");

/** Which deployment of the example runs: Neon over HTTP, or pg through Hyperdrive. */
export type Variant = "neon" | "hyperdrive";

/** Options of {@link startDevStack}. */
export interface DevStackOptions {
  /** A PostgreSQL to use; without it, PGlite persisted in `dataDir`. */
  readonly databaseUrl?: string | undefined;
  /** Where PGlite keeps its files; defaults to `.data/pglite`. */
  readonly dataDir?: string | undefined;
  readonly variant?: Variant | undefined;
  /** The table the bot keeps its state in; defaults to the example's `grammy_sessions`. */
  readonly sessionTable?: string | undefined;
  /** Where wrangler's output goes; defaults to nowhere. */
  readonly log?: ((line: string) => void) | undefined;
}

/** What one message to the bot produced. */
export interface Exchange {
  /** The worker's HTTP status. */
  readonly status: number;
  /** What the bot sent back (sendMessage texts), in order. */
  readonly replies: string[];
}

/** The whole local stack: database, Neon endpoint, fake Bot API and the worker under `wrangler dev`. */
export interface DevStack {
  readonly databaseUrl: string;
  readonly workerUrl: string;
  readonly api: FakeBotApi;
  /** Sends a text message from the local user, as Telegram would, and waits for the bot. */
  send(text: string, options?: { secretToken?: string | null }): Promise<Exchange>;
  /** Stops the worker and starts a fresh one, as a deploy or an evicted isolate would. */
  restartWorker(): Promise<void>;
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
  const stops: (() => Promise<void>)[] = [];
  try {
    let databaseUrl = options.databaseUrl;
    if (databaseUrl === undefined) {
      const dataDir = options.dataDir ?? join(root, ".data", "pglite");
      mkdirSync(dataDir, { recursive: true });
      const pglite: PgliteServer = await startPgliteServer({ dataDir });
      stops.push(pglite.stop);
      databaseUrl = pglite.url;
    }
    const neon: NeonEndpoint = await startNeonEndpoint();
    stops.push(neon.stop);
    const api = await startFakeBotApi();
    stops.push(api.stop);

    const port = await freePort();
    const vars: Record<string, string> = {
      BOT_TOKEN: "123456:local-development",
      BOT_INFO: JSON.stringify(botInfo),
      BOT_API_ROOT: api.apiRoot,
      WEBHOOK_SECRET: LOCAL_SECRET,
      DATABASE_URL: databaseUrl,
      NEON_FETCH_ENDPOINT: `${neon.origin}/sql`,
      ...(options.sessionTable === undefined ? {} : { SESSION_TABLE: options.sessionTable }),
    };
    const worker = { process: await startWorker(variant, port, vars, databaseUrl, options.log) };
    stops.push(() => stopProcess(worker.process));
    const workerUrl = `http://127.0.0.1:${port}`;

    return {
      databaseUrl,
      workerUrl,
      api,
      async send(text, { secretToken = LOCAL_SECRET } = {}) {
        const before = api.calls.length;
        const response = await fetch(workerUrl, {
          method: "POST",
          headers: { "content-type": "application/json", ...(secretToken === null ? {} : { "x-telegram-bot-api-secret-token": secretToken }) },
          body: JSON.stringify(textMessage(LOCAL_CHAT, text)),
        });
        await response.arrayBuffer();
        const replies = api.calls
          .slice(before)
          .filter((call) => call.method === "sendMessage")
          .map((call) => String(call.payload.text));
        return { status: response.status, replies };
      },
      async restartWorker() {
        await stopProcess(worker.process);
        worker.process = await startWorker(variant, port, vars, databaseUrl, options.log);
      },
      stop: () => stopAll(stops),
    };
  } catch (error) {
    await stopAll(stops);
    throw error;
  }
}

async function stopAll(stops: (() => Promise<void>)[]): Promise<void> {
  for (const stop of stops.reverse()) await stop().catch(() => {});
}

/** Runs `wrangler dev` for the variant and resolves once the worker answers. */
async function startWorker(
  variant: Variant,
  port: number,
  vars: Record<string, string>,
  databaseUrl: string,
  log: ((line: string) => void) | undefined,
): Promise<ChildProcess> {
  const wrangler = join(dirname(createRequire(import.meta.url).resolve("wrangler/package.json")), "bin", "wrangler.js");
  const config = variant === "neon" ? join(root, "wrangler.toml") : join(root, "worker-example", "wrangler.hyperdrive.toml");
  const args = [wrangler, "dev", "--config", config, "--ip", "127.0.0.1", "--port", String(port), "--inspector-port", String(await freePort())];
  for (const [name, value] of Object.entries(vars)) args.push("--var", `${name}:${value}`);
  const child = spawn(process.execPath, args, {
    cwd: root,
    env: {
      ...process.env,
      CLOUDFLARE_CF_FETCH_ENABLED: "false",
      WRANGLER_SEND_METRICS: "false",
      CLOUDFLARE_HYPERDRIVE_LOCAL_CONNECTION_STRING_HYPERDRIVE: withPassword(databaseUrl),
      // Never prompt: the dev stack owns the terminal.
      CI: "true",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  const output: string[] = [];
  const collect = (chunk: Buffer) => {
    for (const line of chunk.toString("utf8").split("\n")) {
      if (line.trim() === "") continue;
      output.push(line);
      log?.(line);
    }
  };
  child.stdout?.on("data", collect);
  child.stderr?.on("data", collect);
  const exited = new Promise<never>((_, reject) =>
    child.once("exit", (code) => reject(new Error(`wrangler dev exited (${code}) before the worker was ready:\n${output.join("\n")}`))),
  );
  const deadline = Date.now() + 90_000;
  const ready = (async () => {
    for (;;) {
      try {
        // Our worker answers a GET with 405; anything else is wrangler still starting.
        const response = await fetch(`http://127.0.0.1:${port}`, { signal: AbortSignal.timeout(2_000) });
        await response.arrayBuffer();
        if (response.status === 405) return;
      } catch {
        // not listening yet
      }
      if (Date.now() > deadline) throw new Error(`wrangler dev did not answer within 90 s:\n${output.join("\n")}`);
      await new Promise((resolve) => setTimeout(resolve, 250));
    }
  })();
  try {
    await Promise.race([ready, exited]);
  } catch (error) {
    await stopProcess(child);
    throw error;
  }
  return child;
}

async function stopProcess(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once("exit", () => resolve()));
  child.kill("SIGTERM");
  const timer = setTimeout(() => child.kill("SIGKILL"), 5_000);
  await exited;
  clearTimeout(timer);
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
