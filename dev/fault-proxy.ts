// A fault-injecting TCP proxy in front of PostgreSQL, and the seeded random source that makes runs repeatable.
import { connect, createServer, type AddressInfo, type Socket } from "node:net";

/** A way a connection can fail, at a point in a query's life. */
export type Fault =
  /** The client's next message is swallowed and the connection closed: the query never arrives. */
  | "drop-before-query"
  /** Half of the client's message is passed on, then the connection closes. */
  | "drop-mid-query"
  /** Half of the server's answer is passed on, then the connection closes: the query ran. */
  | "drop-mid-response";

/** What the proxy does to traffic; every field can be changed while it runs. */
export interface FaultSettings {
  /** Added before each chunk is passed on, either way. */
  latencyMs: number;
  /** Chance that a chunk meets one of `faults` (0 to 1). */
  probability: number;
  faults: Fault[];
}

/** A TCP proxy on loopback between the clients and PostgreSQL that injects faults. */
export interface FaultProxy {
  /** The proxy's port on 127.0.0.1. */
  readonly port: number;
  /** The same connection string, pointed at the proxy. */
  readonly url: string;
  readonly settings: FaultSettings;
  /** How many of each fault were injected. */
  readonly injected: Record<Fault, number>;
  /** Closes every open connection now, as a restarting server would. */
  dropAll(): void;
  /**
   * Sends new connections to the database of `url` (host and port) from now on,
   * as a failover's DNS or virtual-IP move does: connections already open stay
   * with the server they reached.
   */
  moveTo(url: string): void;
  /** The port new connections go to. */
  readonly targetPort: number;
  /** How many connections are open to the server on `port`. */
  openTo(port: number): number;
  /** How many connections were ever opened to the server on `port`. */
  openedTo(port: number): number;
  /**
   * Stops listening, so that new connections are refused (ECONNREFUSED), as
   * by a server that is down; `false` listens again on the same port.
   */
  refuse(refusing: boolean): Promise<void>;
  stop(): Promise<void>;
}

const STARTUP_BYTES = 8; // the wire protocol's first message from a client is SSLRequest or StartupMessage

/**
 * Starts a proxy to the database of `url` (host and port), with faults off.
 * Only the first message of a connection (startup) is always let through,
 * so that faults hit queries, not authentication. Faults can be drawn at
 * random (`probability`) and the random source can be seeded for
 * repeatable runs.
 */
export async function startFaultProxy(url: string, random: () => number = Math.random): Promise<FaultProxy> {
  let target = new URL(url);
  const open = new Map<number, number>(); // connections open per server port
  const opened = new Map<number, number>(); // connections ever opened per server port
  const settings: FaultSettings = { latencyMs: 0, probability: 0, faults: [] };
  const injected: FaultProxy["injected"] = { "drop-before-query": 0, "drop-mid-query": 0, "drop-mid-response": 0 };
  const sockets = new Set<Socket>();

  const pick = (allowed: Fault[]): Fault | undefined => {
    const candidates = settings.faults.filter((fault) => allowed.includes(fault));
    if (candidates.length === 0 || random() >= settings.probability) return undefined;
    return candidates[Math.floor(random() * candidates.length)];
  };
  const later = (action: () => void) => (settings.latencyMs > 0 ? setTimeout(action, settings.latencyMs) : action());

  const server = createServer((client) => {
    const port = Number(target.port || 5432);
    const upstream = connect({ host: target.hostname, port });
    sockets.add(client);
    sockets.add(upstream);
    open.set(port, (open.get(port) ?? 0) + 1);
    opened.set(port, (opened.get(port) ?? 0) + 1);
    let closed = false;
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
      if (!closed) open.set(port, (open.get(port) ?? 1) - 1);
      closed = true;
    };
    let spoken = 0; // the client's chunks so far: the first is its startup message
    client.on("data", (chunk: Buffer) => {
      spoken += 1;
      const fault =
        spoken > 1 && chunk.length >= STARTUP_BYTES ? pick(["drop-before-query", "drop-mid-query"]) : undefined;
      if (fault !== undefined) injected[fault] += 1;
      if (fault === "drop-before-query") return close();
      if (fault === "drop-mid-query") {
        upstream.write(chunk.subarray(0, Math.ceil(chunk.length / 2)), close);
        return;
      }
      later(() => upstream.write(chunk));
    });
    upstream.on("data", (chunk: Buffer) => {
      // Only answers to queries: the startup exchange is over once the client has spoken twice.
      const fault = spoken > 1 ? pick(["drop-mid-response"]) : undefined;
      if (fault !== undefined) {
        injected[fault] += 1;
        client.write(chunk.subarray(0, Math.floor(chunk.length / 2)), close);
        return;
      }
      later(() => client.write(chunk));
    });
    client.on("error", close);
    upstream.on("error", close);
    client.on("close", close);
    upstream.on("close", close);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  const proxied = new URL(url);
  proxied.hostname = "127.0.0.1";
  proxied.port = String(port);

  return {
    port,
    url: proxied.href,
    settings,
    injected,
    moveTo(next) {
      target = new URL(next);
    },
    get targetPort() {
      return Number(target.port || 5432);
    },
    openTo(port) {
      return open.get(port) ?? 0;
    },
    openedTo(port) {
      return opened.get(port) ?? 0;
    },
    dropAll() {
      for (const socket of sockets) socket.destroy();
      sockets.clear();
    },
    async refuse(refusing) {
      // close() stops listening at once; its callback would wait for open connections.
      if (refusing) server.close();
      else await new Promise<void>((resolve) => server.listen(port, "127.0.0.1", resolve));
    },
    async stop() {
      for (const socket of sockets) socket.destroy();
      if (server.listening) await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** A seeded random source (mulberry32), so that a fault run can be repeated exactly. */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
