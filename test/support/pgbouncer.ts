import { execFileSync, spawn } from "node:child_process";
import { accessSync, chownSync, constants, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { createServer, connect as connectTcp } from "node:net";
import { tmpdir, userInfo } from "node:os";
import { delimiter, join } from "node:path";

/** A PgBouncer in transaction mode, started by {@link startPgbouncer}. */
export interface Pgbouncer {
  /** Connection string for pg and postgres.js: the same database and user, through the pooler. */
  readonly url: string;
  /** `pgbouncer --version`'s first line, e.g. "PgBouncer 1.18.0". */
  readonly version: string;
  /** Stops the process and removes its directory. */
  stop(): Promise<void>;
}

/** How to run PgBouncer on this machine, or why it cannot run. */
export type PgbouncerAvailability = { readonly binary: string } | { readonly unavailable: string };

// Debian installs pgbouncer in /usr/sbin, which is not on every user's PATH.
const EXTRA_DIRS = ["/usr/sbin", "/usr/local/sbin", "/usr/local/bin", "/opt/homebrew/bin"];

/**
 * Whether {@link startPgbouncer} can run here: a `pgbouncer` binary on PATH (or
 * where Debian puts it) and a PostgreSQL server to put it in front of. PGlite's
 * socket server is one session that multiplexes its clients, so a pooler in front
 * of it would test nothing a pooler does; the tests that need one skip there.
 */
export function pgbouncerAvailability(backend: "postgres" | "pglite"): PgbouncerAvailability {
  if (backend !== "postgres")
    return { unavailable: "DATABASE_URL is unset (PGlite); PgBouncer needs a PostgreSQL server to pool" };
  const dirs = [...(process.env.PATH ?? "").split(delimiter), ...EXTRA_DIRS].filter((dir) => dir !== "");
  for (const dir of dirs) {
    const binary = join(dir, "pgbouncer");
    try {
      accessSync(binary, constants.X_OK);
      return { binary };
    } catch {
      // not here
    }
  }
  return { unavailable: "no pgbouncer binary (apt-get install -y pgbouncer, or brew install pgbouncer)" };
}

/** Options of {@link startPgbouncer}. */
export interface PgbouncerOptions {
  /** Server connections per database and user (PgBouncer's `default_pool_size`). Defaults to 4. */
  readonly poolSize?: number;
}

/**
 * Starts PgBouncer in transaction mode on 127.0.0.1 and a free port, in front of
 * the server of `databaseUrl` (any database name is passed through), with its
 * config in a temporary directory. It runs in the foreground under a watchdog that
 * ends it when {@link Pgbouncer.stop} is called or this process goes away, however it goes.
 *
 * Statements prepared on one server connection are not seen on the next: PgBouncer
 * before 1.21 cannot keep them, and on 1.21 and later `max_prepared_statements = 0`
 * turns that off, so every version behaves as the poolers the storage must survive.
 *
 * @throws Error when PgBouncer is unavailable (see {@link pgbouncerAvailability}) or does not start
 */
export async function startPgbouncer(
  binary: string,
  databaseUrl: string,
  options: PgbouncerOptions = {},
): Promise<Pgbouncer> {
  const version = execFileSync(binary, ["--version"], { encoding: "utf8" }).split("\n")[0]?.trim() ?? "PgBouncer";
  const [major = 0, minor = 0] = (/(\d+)\.(\d+)/.exec(version) ?? []).slice(1).map(Number);
  const server = new URL(databaseUrl);
  const user = decodeURIComponent(server.username) || process.env.PGUSER || userInfo().username;
  const password = decodeURIComponent(server.password);
  // A socket directory may come as ?host=/path; otherwise the URL's host (IPv6 without its brackets).
  const host = server.searchParams.get("host") ?? server.hostname.replace(/^\[(.*)\]$/, "$1");
  const database = decodeURIComponent(server.pathname.slice(1)) || user;
  // PgBouncer refuses to run as root; as root it drops to the server's usual owner.
  const asRoot = process.getuid?.() === 0;
  const owner = asRoot ? ownerIds("postgres") : undefined;

  for (let attempt = 1; ; attempt += 1) {
    const port = await freePort();
    const dir = mkdtempSync(join(tmpdir(), "pgbouncer-"));
    const authFile = join(dir, "userlist.txt");
    const config = join(dir, "pgbouncer.ini");
    // With auth_type = trust the client's password is not checked; the one here is what PgBouncer logs in to the server with.
    writeFileSync(authFile, `${quoteIni(user)} ${quoteIni(password)}\n`, { mode: 0o600 });
    writeFileSync(
      config,
      [
        "[databases]",
        `* = host=${host} port=${server.port || "5432"}`,
        "[pgbouncer]",
        "listen_addr = 127.0.0.1",
        `listen_port = ${port}`,
        // No Unix socket: nothing of this instance outside its directory and its loopback port.
        "unix_socket_dir =",
        "auth_type = trust",
        `auth_file = ${authFile}`,
        "pool_mode = transaction",
        "max_client_conn = 200",
        `default_pool_size = ${options.poolSize ?? 4}`,
        // pg and postgres.js send these at startup; PgBouncer would refuse the connection.
        "ignore_startup_parameters = extra_float_digits,options",
        "log_connections = 0",
        "log_disconnections = 0",
        ...(major > 1 || (major === 1 && minor >= 21) ? ["max_prepared_statements = 0"] : []),
        ...(asRoot ? ["user = postgres"] : []),
        "",
      ].join("\n"),
    );
    if (owner !== undefined) {
      for (const path of [dir, authFile, config]) chownSync(path, owner.uid, owner.gid);
    }
    // The database and user are those of the suite; only host and port change.
    const url = `postgres://${encodeURIComponent(user)}@127.0.0.1:${port}/${encodeURIComponent(database)}`;
    try {
      return { url, version, stop: await run(binary, config, port, dir) };
    } catch (error) {
      rmSync(dir, { recursive: true, force: true });
      // Another process may have taken the free port between our probe and PgBouncer's bind.
      if (attempt >= 3 || !String(error).includes("Address already in use")) throw error;
    }
  }
}

// Runs PgBouncer ($0, config $1) and ends it when our end of its stdin closes: on stop(), or when the
// test worker dies without running any handler (killed on a timeout, say), so no pooler outlives its test run.
const WATCHDOG = `exec 3<&0
"$0" "$1" </dev/null &
pid=$!
(read -r _ <&3; kill -TERM "$pid" 2>/dev/null) &
wait "$pid"`;

/** Starts the process and resolves, once it accepts connections, to how to stop it. */
async function run(binary: string, config: string, port: number, dir: string): Promise<() => Promise<void>> {
  const child = spawn("/bin/sh", ["-c", WATCHDOG, binary, config], { stdio: ["pipe", "ignore", "pipe"] });
  // Read stderr continuously (a full pipe would stall PgBouncer), keeping the tail for error messages.
  let log = "";
  child.stderr.on("data", (chunk: Buffer) => {
    log = (log + chunk.toString("utf8")).slice(-8_000);
  });
  const exited = new Promise<void>((resolve) => child.once("close", () => resolve()));
  const exitedEarly = new Promise<never>((_, reject) => {
    child.once("error", reject);
    void exited.then(() =>
      reject(new Error(`pgbouncer exited (${child.exitCode ?? child.signalCode}) before it listened:\n${log}`)),
    );
  });
  exitedEarly.catch(() => {});
  const stop = async () => {
    // SIGTERM from the watchdog: immediate shutdown, without waiting for clients to disconnect.
    child.stdin.end();
    await exited;
    rmSync(dir, { recursive: true, force: true });
  };
  try {
    await Promise.race([listening(port, 10_000), exitedEarly]);
  } catch (error) {
    await stop();
    throw error;
  }
  return stop;
}

/** Resolves once something accepts TCP connections on 127.0.0.1:`port`. */
async function listening(port: number, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const open = await new Promise<boolean>((resolve) => {
      const socket = connectTcp({ host: "127.0.0.1", port }, () => {
        socket.destroy();
        resolve(true);
      });
      socket.once("error", () => resolve(false));
    });
    if (open) return;
    if (Date.now() > deadline) throw new Error(`pgbouncer did not listen on 127.0.0.1:${port} within ${timeoutMs} ms`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A port free on 127.0.0.1 right now. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const probe = createServer();
    probe.once("error", reject);
    probe.listen(0, "127.0.0.1", () => {
      const address = probe.address();
      probe.close(() =>
        typeof address === "object" && address !== null ? resolve(address.port) : reject(new Error("no port")),
      );
    });
  });
}

function ownerIds(name: string): { uid: number; gid: number } {
  try {
    const id = (flag: string) => Number(execFileSync("id", [flag, name], { encoding: "utf8" }).trim());
    return { uid: id("-u"), gid: id("-g") };
  } catch {
    throw new Error(`running as root, PgBouncer must drop to a user "${name}", and there is none`);
  }
}

/** A value in PgBouncer's auth_file: double-quoted, with inner double quotes doubled. */
function quoteIni(value: string): string {
  return `"${value.replaceAll('"', '""')}"`;
}
