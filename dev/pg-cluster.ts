// A primary and a synchronous streaming standby on loopback, from this machine's PostgreSQL binaries, for failover tests.
import { execFile, execFileSync } from "node:child_process";
import {
  appendFileSync,
  chmodSync,
  chownSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  statSync,
  writeFileSync,
} from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { promisify } from "node:util";
import pg from "pg";

const run = promisify(execFile);

/** Where the PostgreSQL binaries are: PG_BIN, or Debian's PostgreSQL 15. */
export const PG_BIN = process.env.PG_BIN ?? "/usr/lib/postgresql/15/bin";
/** initdb and pg_ctl refuse root: as root they run as this user. */
const OS_USER = "postgres";

/** One server of the cluster: its data directory and its port on 127.0.0.1. */
export interface PgNode {
  readonly name: string;
  readonly dataDir: string;
  readonly port: number;
  /** `postgres://postgres@127.0.0.1:<port>/postgres` */
  readonly url: string;
  /** Whether this helper believes it is running. */
  running: boolean;
}

/** Whether the binaries this helper needs are here (the failover tests skip without them). */
export function clusterAvailable(): boolean {
  try {
    return statSync(join(PG_BIN, "pg_ctl")).isFile() && statSync(join(PG_BIN, "pg_basebackup")).isFile();
  } catch {
    return false;
  }
}

/** A free TCP port on loopback (the OS picks it; it is free again when this returns). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as { port: number };
  await new Promise<void>((resolve) => server.close(() => resolve()));
  return port;
}

const asRoot = typeof process.getuid === "function" && process.getuid() === 0;

/** Runs a PostgreSQL binary, as the postgres user when this process is root. */
async function pgBin(binary: string, args: string[], timeoutMs = 60_000): Promise<string> {
  const path = join(PG_BIN, binary);
  const [file, argv] = asRoot ? ["runuser", ["-u", OS_USER, "--", path, ...args]] : [path, args];
  try {
    const { stdout } = await run(file, argv, { timeout: timeoutMs, env: { ...process.env, LC_ALL: "C" } });
    return stdout;
  } catch (error) {
    const { stderr = "", stdout = "" } = error as { stderr?: string; stdout?: string };
    throw new Error(`${binary} ${args.join(" ")} failed: ${stderr || stdout || String(error)}`);
  }
}

/** Makes a path belong to the postgres user when this process is root, so that the server can write there. */
function own(path: string): void {
  if (!asRoot) return;
  const { uid, gid } = userIds(OS_USER);
  chownSync(path, uid, gid);
}

let ids: { uid: number; gid: number } | undefined;
function userIds(user: string): { uid: number; gid: number } {
  if (ids !== undefined) return ids;
  const line = readFileSync("/etc/passwd", "utf8")
    .split("\n")
    .find((entry) => entry.startsWith(`${user}:`));
  if (line === undefined) throw new Error(`no user ${user} to run PostgreSQL as`);
  const [, , uid, gid] = line.split(":");
  ids = { uid: Number(uid), gid: Number(gid) };
  return ids;
}

/** Settings of every server of the cluster: loopback only, small, fast, replication ready. */
const settings = (port: number, socketDir: string) => `
listen_addresses = '127.0.0.1'
port = ${port}
unix_socket_directories = '${socketDir}'
max_connections = 60
shared_buffers = 16MB
wal_level = replica
max_wal_senders = 6
wal_keep_size = 128MB
hot_standby = on
hot_standby_feedback = on
wal_receiver_status_interval = 1s
wal_retrieve_retry_interval = 200ms
synchronous_commit = on
fsync = off
full_page_writes = on
logging_collector = off
log_min_messages = warning
`;

/** How a node's server is started and stopped. */
async function startNode(node: PgNode, extra: string[] = []): Promise<void> {
  await pgBin("pg_ctl", ["-D", node.dataDir, "-l", `${node.dataDir}.log`, "-w", "-t", "30", ...extra, "start"]);
  node.running = true;
}

/**
 * Stops a node; `immediate` is a crash as far as its clients and its WAL go.
 * Never throws for a server that is already down.
 */
export async function stopNode(node: PgNode, mode: "immediate" | "fast" = "immediate"): Promise<void> {
  try {
    await pgBin("pg_ctl", ["-D", node.dataDir, "-m", mode, "-w", "-t", "30", "stop"]);
  } catch (error) {
    if (!/No such process|not running|PID file .* does not exist|Is server running/i.test(String(error))) throw error;
  }
  node.running = false;
}

/** Runs one statement on a node, on a connection of its own. */
export async function onNode<R extends pg.QueryResultRow = Record<string, unknown>>(
  node: PgNode,
  text: string,
  params: unknown[] = [],
): Promise<R[]> {
  const client = new pg.Client({ connectionString: node.url, connectionTimeoutMillis: 5000 });
  client.on("error", () => {});
  await client.connect();
  try {
    return (await client.query<R>(text, params)).rows;
  } finally {
    await client.end().catch(() => {});
  }
}

async function waitFor(what: string, check: () => Promise<boolean>, timeoutMs = 30_000): Promise<void> {
  const until = performance.now() + timeoutMs;
  for (;;) {
    try {
      if (await check()) return;
    } catch {
      // not yet
    }
    if (performance.now() > until) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A primary with a synchronous standby; after {@link failover} the standby is the primary. */
export interface PgCluster {
  /** The server that takes writes now. */
  readonly primary: PgNode;
  /** Its synchronous standby, when there is one. */
  readonly standby: PgNode | undefined;
  /** Every node ever started (stopped ones included), for cleaning up. */
  readonly nodes: readonly PgNode[];
  /** The temporary directory holding every data directory. */
  readonly dir: string;
  /**
   * Stops the primary as a crash would (`pg_ctl stop -m immediate`) and promotes
   * the standby; answers the old primary (down) and the new one. The new
   * primary runs without a synchronous standby until {@link addStandby}.
   */
  failover(): Promise<{ old: PgNode; promoted: PgNode }>;
  /**
   * Starts `node` (an old primary, stopped) again as a hot standby of the
   * current primary (`standby.signal`, `primary_conninfo`): read-only, and, as a
   * demoted primary that was not rewound, it may never catch up.
   */
  restartAsStandby(node: PgNode): Promise<void>;
  /** Builds a new synchronous standby of the current primary with pg_basebackup, and waits until it is in sync. */
  addStandby(): Promise<PgNode>;
  /** Stops every server and removes the directory. */
  destroy(): Promise<void>;
}

/**
 * Starts a primary (`initdb`) and a synchronous streaming standby
 * (`pg_basebackup -R`), both on free ports of 127.0.0.1 only, in a fresh
 * temporary directory; as root the servers run as the postgres user. The
 * primary has `synchronous_standby_names = '*'` and `synchronous_commit = on`:
 * a commit is acknowledged only once the standby has flushed it.
 * On any failure everything started is stopped and removed.
 */
export async function startCluster(): Promise<PgCluster> {
  const dir = mkdtempSync(join(tmpdir(), "gps-cluster-"));
  chmodSync(dir, 0o700);
  own(dir);
  const nodes: PgNode[] = [];
  let counter = 0;
  const newNode = async (): Promise<PgNode> => {
    const port = await freePort();
    counter += 1;
    const name = `node${counter}`;
    const node: PgNode = {
      name,
      dataDir: join(dir, name),
      port,
      url: `postgres://postgres@127.0.0.1:${port}/postgres`,
      running: false,
    };
    nodes.push(node);
    return node;
  };
  const confAppend = (node: PgNode, text: string) => appendFileSync(join(node.dataDir, "postgresql.conf"), text);

  // Should this process exit before destroy() (an uncaught error, process.exit), the servers go with it: pg_ctl
  // starts them as daemons, which would outlive it.
  const onExit = () => {
    for (const node of nodes) {
      try {
        const argv = ["-D", node.dataDir, "-m", "immediate", "-w", "stop"];
        if (asRoot)
          execFileSync("runuser", ["-u", OS_USER, "--", join(PG_BIN, "pg_ctl"), ...argv], { stdio: "ignore" });
        else execFileSync(join(PG_BIN, "pg_ctl"), argv, { stdio: "ignore" });
      } catch {
        // not running
      }
    }
    rmSync(dir, { recursive: true, force: true });
  };
  process.once("exit", onExit);
  const destroy = async () => {
    for (const node of nodes) await stopNode(node, "immediate").catch(() => {});
    rmSync(dir, { recursive: true, force: true });
    process.removeListener("exit", onExit);
  };

  const state = { primary: undefined as unknown as PgNode, standby: undefined as PgNode | undefined };

  const setSync = async (node: PgNode, names: string) => {
    await onNode(node, `ALTER SYSTEM SET synchronous_standby_names = '${names}'`);
    await onNode(node, "SELECT pg_reload_conf()");
  };

  const addStandby = async (): Promise<PgNode> => {
    const node = await newNode();
    const { primary } = state;
    await pgBin("pg_basebackup", [
      "-h",
      "127.0.0.1",
      "-p",
      String(primary.port),
      "-U",
      "postgres",
      "-D",
      node.dataDir,
      "-R",
      "-X",
      "stream",
      "-c",
      "fast",
    ]);
    // The copied settings name the primary's port; this one gets its own.
    confAppend(node, `\nport = ${node.port}\ncluster_name = '${node.name}'\n`);
    writeFileSync(join(node.dataDir, "postgresql.auto.conf"), primaryConnInfo(primary), { flag: "w" });
    own(join(node.dataDir, "postgresql.auto.conf"));
    await startNode(node);
    // Synchronous as soon as the standby streams: from then on every acknowledged commit is on both.
    await setSync(primary, "*");
    await waitFor("the standby to be in sync", async () => {
      const rows = await onNode<{ n: number }>(
        primary,
        "SELECT count(*)::int AS n FROM pg_stat_replication WHERE sync_state = 'sync' AND state = 'streaming'",
      );
      return (rows[0]?.n ?? 0) > 0;
    });
    state.standby = node;
    return node;
  };

  try {
    const primary = await newNode();
    await pgBin("initdb", ["-D", primary.dataDir, "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"]);
    confAppend(primary, settings(primary.port, dir));
    await startNode(primary);
    state.primary = primary;
    await addStandby();
  } catch (error) {
    await destroy();
    throw error;
  }

  return {
    get primary() {
      return state.primary;
    },
    get standby() {
      return state.standby;
    },
    nodes,
    dir,
    async failover() {
      const old = state.primary;
      const promoted = state.standby;
      if (promoted === undefined) throw new Error("no standby to promote");
      await stopNode(old, "immediate");
      await pgBin("pg_ctl", ["-D", promoted.dataDir, "-w", "-t", "30", "promote"]);
      state.primary = promoted;
      state.standby = undefined;
      // Alone now: with a synchronous standby named, every commit would wait forever.
      await setSync(promoted, "");
      rmSync(join(promoted.dataDir, "standby.signal"), { force: true });
      return { old, promoted };
    },
    async restartAsStandby(node) {
      writeFileSync(join(node.dataDir, "standby.signal"), "");
      own(join(node.dataDir, "standby.signal"));
      writeFileSync(join(node.dataDir, "postgresql.auto.conf"), primaryConnInfo(state.primary));
      own(join(node.dataDir, "postgresql.auto.conf"));
      await startNode(node);
    },
    addStandby,
    destroy,
  };
}

const primaryConnInfo = (primary: PgNode) =>
  `primary_conninfo = 'host=127.0.0.1 port=${primary.port} user=postgres'\nrecovery_target_timeline = 'latest'\n`;
