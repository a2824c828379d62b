// A local stand-in for Neon's proxy (SQL over HTTP, WebSocket tunnels) on loopback: tests, bench, npm run dev.
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import { connect, type AddressInfo, type Socket } from "node:net";
import pg from "pg";
import { WebSocketServer, type WebSocket } from "ws";

/**
 * A local stand-in for Neon's proxy, so that the real `@neondatabase/serverless`
 * driver runs against a local PostgreSQL with no account and no internet:
 *
 * - `POST /sql` speaks Neon's SQL-over-HTTP: the `Neon-Connection-String`,
 *   `Neon-Raw-Text-Output`, `Neon-Array-Mode` and `Neon-Batch-*` headers; a
 *   body of `{ query, params }` or `{ queries: [...] }` (one transaction);
 *   Postgres errors as HTTP 400 JSON carrying the Postgres fields.
 * - `/v1?address=host:port` tunnels a WebSocket to that TCP address, which is
 *   how Neon's `Pool` and `Client` reach the database.
 *
 * It listens on loopback only and reaches loopback databases only.
 */
export interface NeonEndpoint {
  /** `http://127.0.0.1:<port>`. */
  readonly origin: string;
  readonly port: number;
  /** What the endpoint has served so far. */
  readonly stats: NeonEndpointStats;
  /** Faults to inject into `POST /sql`; off unless set. */
  readonly faults: HttpFaults;
  /** Closes every tunnel and database connection, then the server. */
  stop(): Promise<void>;
}

/** Counters, for asserting round trips and leaks. */
export interface NeonEndpointStats {
  /** `POST /sql` requests received. */
  httpRequests: number;
  /** WebSocket tunnels opened. */
  tunnelsOpened: number;
  /** WebSocket tunnels open right now. */
  tunnelsOpen: number;
}

/** A way an HTTP request to the endpoint can fail. */
export type HttpFault =
  /** 503 before the query runs: it did not take effect. */
  | "5xx"
  /** The query runs, but the answer comes only after `timeoutMs`, when the client has given up. */
  | "timeout"
  /** The query runs and half of the answer is sent before the connection closes. */
  | "truncate";

/** What the endpoint does to `POST /sql`; change it while it runs. */
export interface HttpFaults {
  /** Chance (0 to 1) that a request meets one of `kinds`. */
  probability: number;
  kinds: HttpFault[];
  /** How long a "timeout" holds the answer back. */
  timeoutMs: number;
  random: () => number;
  /** How many of each were injected. */
  readonly injected: Record<HttpFault, number>;
}

/** The part of `neonConfig` (driver 0.9.x and 1.x) that points the driver at an endpoint. */
export interface NeonConfigLike {
  fetchEndpoint: string | ((host: string, port: number | string, options?: unknown) => string);
  wsProxy: string | ((host: string, port: number | string) => string) | undefined;
  useSecureWebSocket: boolean;
  pipelineConnect: string | false;
  webSocketConstructor: unknown;
}

/**
 * Points a copy of the Neon driver at the endpoint. Each copy of the driver
 * (for instance the one `@vercel/postgres` bundles) has its own `neonConfig`.
 */
export function useNeonEndpoint(
  neonConfig: NeonConfigLike,
  endpoint: Pick<NeonEndpoint, "origin" | "port">,
  webSocket: unknown,
): void {
  neonConfig.fetchEndpoint = `${endpoint.origin}/sql`;
  neonConfig.wsProxy = (host, port) => `127.0.0.1:${endpoint.port}/v1?address=${host}:${port}`;
  neonConfig.useSecureWebSocket = false;
  neonConfig.pipelineConnect = false;
  neonConfig.webSocketConstructor = webSocket;
}

const TERMINATE = Buffer.from([0x58, 0, 0, 0, 4]); // the wire protocol's Terminate message
const LOOPBACK = new Set(["127.0.0.1", "localhost", "::1", "[::1]"]);
const MAX_BODY_BYTES = 64 * 1024 * 1024;
const ERROR_FIELDS = [
  "severity",
  "code",
  "detail",
  "hint",
  "position",
  "internalPosition",
  "internalQuery",
  "where",
  "schema",
  "table",
  "column",
  "dataType",
  "constraint",
  "file",
  "line",
  "routine",
] as const;
const ISOLATION_LEVELS: Record<string, string> = {
  ReadUncommitted: "READ UNCOMMITTED",
  ReadCommitted: "READ COMMITTED",
  RepeatableRead: "REPEATABLE READ",
  Serializable: "SERIALIZABLE",
};
// Values stay as PostgreSQL's text, as Neon sends them with Neon-Raw-Text-Output.
const RAW_TEXT = { getTypeParser: () => (value: string) => value };

/** Thrown for requests Neon itself would refuse; becomes an HTTP error with a JSON message. */
class EndpointError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

interface QueryBody {
  query: string;
  params?: unknown[];
}

/** Starts the endpoint on 127.0.0.1 (port 0: a free one). */
export async function startNeonEndpoint(options: { port?: number } = {}): Promise<NeonEndpoint> {
  const stats: NeonEndpointStats = { httpRequests: 0, tunnelsOpened: 0, tunnelsOpen: 0 };
  const faults: HttpFaults = {
    probability: 0,
    kinds: [],
    timeoutMs: 1_000,
    random: Math.random,
    injected: { "5xx": 0, timeout: 0, truncate: 0 },
  };
  const pickFault = (): HttpFault | undefined =>
    faults.kinds.length > 0 && faults.random() < faults.probability
      ? faults.kinds[Math.floor(faults.random() * faults.kinds.length)]
      : undefined;
  const pools = new Map<string, pg.Pool>();
  const sockets = new Set<Socket>();

  const poolFor = (connectionString: string): pg.Pool => {
    let pool = pools.get(connectionString);
    if (pool === undefined) {
      const host = new URL(connectionString).hostname;
      if (!LOOPBACK.has(host))
        throw new EndpointError(400, `this local endpoint only reaches loopback databases, not ${host}`);
      pool = new pg.Pool({ connectionString, max: 10 });
      pool.on("error", () => {}); // an idle client lost to a server restart is replaced on the next query
      pools.set(connectionString, pool);
    }
    return pool;
  };

  const handleSql = async (request: IncomingMessage): Promise<unknown> => {
    const connectionString = header(request, "neon-connection-string");
    if (connectionString === undefined) throw new EndpointError(400, "missing Neon-Connection-String header");
    const body = JSON.parse(await readBody(request)) as QueryBody | { queries: QueryBody[] };
    const shape = {
      rawText: header(request, "neon-raw-text-output") === "true",
      arrayMode: header(request, "neon-array-mode") === "true",
    };
    const pool = poolFor(connectionString);
    if (!("queries" in body)) return runQuery(pool, body, shape);

    const client = await pool.connect();
    try {
      await client.query(beginStatement(request));
      const results = [];
      for (const query of body.queries) results.push(await runQuery(client, query, shape));
      await client.query("COMMIT");
      return { results };
    } catch (error) {
      await client.query("ROLLBACK").catch(() => {});
      throw error;
    } finally {
      client.release();
    }
  };

  const server = createServer((request, response) => {
    if (request.method !== "POST" || new URL(request.url ?? "/", "http://x").pathname !== "/sql") {
      send(response, 404, { message: "not found: POST /sql or a WebSocket at /v1" });
      return;
    }
    stats.httpRequests += 1;
    const fault = pickFault();
    if (fault !== undefined) faults.injected[fault] += 1;
    if (fault === "5xx") {
      request.resume();
      send(response, 503, { message: "injected: service unavailable" });
      return;
    }
    handleSql(request).then(
      async (result) => {
        if (fault === "timeout") await new Promise((resolve) => setTimeout(resolve, faults.timeoutMs));
        if (fault === "truncate") {
          const text = JSON.stringify(result);
          response.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
          response.end(text.slice(0, Math.floor(text.length / 2)), () => response.destroy());
          return;
        }
        if (!response.destroyed) send(response, 200, result);
      },
      (error: unknown) => send(response, ...errorResponse(error)),
    );
  });

  const webSockets = new WebSocketServer({ noServer: true });
  server.on("upgrade", (request, socket, head) => {
    const url = new URL(request.url ?? "/", "http://x");
    const [host, port] = splitAddress(url.searchParams.get("address") ?? "");
    if (url.pathname !== "/v1" || host === undefined || !LOOPBACK.has(host)) {
      socket.end("HTTP/1.1 400 Bad Request\r\n\r\n");
      return;
    }
    webSockets.handleUpgrade(request, socket, head, (ws) => tunnel(ws, host, port));
  });

  const tunnel = (ws: WebSocket, host: string, port: number): void => {
    stats.tunnelsOpened += 1;
    stats.tunnelsOpen += 1;
    const tcp = connect({ host: host === "localhost" ? "127.0.0.1" : host.replace(/^\[|\]$/g, ""), port });
    sockets.add(tcp);
    let closed = false;
    const close = () => {
      if (closed) return;
      closed = true;
      stats.tunnelsOpen -= 1;
      sockets.delete(tcp);
      tcp.destroy();
      ws.close();
    };
    ws.on("message", (data: Buffer) => {
      tcp.write(data);
      // PostgreSQL hangs up after Terminate; PGlite's socket server does not,
      // and the driver waits for the hang-up. Ending our side brings it about.
      if (data.length === TERMINATE.length && data.equals(TERMINATE)) tcp.end();
    });
    tcp.on("data", (data) => ws.send(data));
    ws.on("close", close);
    ws.on("error", close);
    tcp.on("close", close);
    tcp.on("error", close);
  };

  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;

  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    stats,
    faults,
    async stop() {
      for (const socket of sockets) socket.destroy();
      for (const client of webSockets.clients) client.terminate();
      await Promise.all([...pools.values()].map((pool) => pool.end()));
      server.closeAllConnections();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

async function runQuery(
  queryable: Pick<pg.Pool, "query">,
  { query, params = [] }: QueryBody,
  { rawText, arrayMode }: { rawText: boolean; arrayMode: boolean },
): Promise<unknown> {
  // Extended protocol always, as Neon does: one statement per query.
  const config: pg.QueryConfig & { queryMode: "extended"; rowMode?: "array"; types?: unknown } = {
    text: query,
    values: params,
    queryMode: "extended",
  };
  if (arrayMode) config.rowMode = "array";
  if (rawText) config.types = RAW_TEXT;
  const result = await queryable.query(config as pg.QueryConfig);
  return {
    command: result.command,
    rowCount: result.rowCount,
    rows: result.rows,
    fields: result.fields.map(({ name, tableID, columnID, dataTypeID, dataTypeSize, dataTypeModifier }) => ({
      name,
      tableID,
      columnID,
      dataTypeID,
      dataTypeSize,
      dataTypeModifier,
      format: "text",
    })),
    rowAsArray: arrayMode,
  };
}

function beginStatement(request: IncomingMessage): string {
  const isolation = ISOLATION_LEVELS[header(request, "neon-batch-isolation-level") ?? ""];
  const readOnly = header(request, "neon-batch-read-only") === "true";
  const deferrable = header(request, "neon-batch-deferrable") === "true";
  return ["BEGIN", isolation && `ISOLATION LEVEL ${isolation}`, readOnly && "READ ONLY", deferrable && "DEFERRABLE"]
    .filter(Boolean)
    .join(" ");
}

function errorResponse(error: unknown): [number, unknown] {
  if (error instanceof EndpointError) return [error.status, { message: error.message }];
  if (error instanceof SyntaxError) return [400, { message: `request body is not JSON: ${error.message}` }];
  if (error instanceof pg.DatabaseError) {
    const body: Record<string, unknown> = { message: error.message };
    for (const field of ERROR_FIELDS) if (error[field] !== undefined) body[field] = error[field];
    return [400, body];
  }
  // The database could not be reached: Neon answers with a server error.
  return [
    502,
    {
      message: `could not reach the database: ${error instanceof Error ? error.message || String(error) : String(error)}`,
    },
  ];
}

function send(response: ServerResponse, status: number, body: unknown): void {
  const text = JSON.stringify(body);
  response.writeHead(status, { "content-type": "application/json", "content-length": Buffer.byteLength(text) });
  response.end(text);
}

function header(request: IncomingMessage, name: string): string | undefined {
  const value = request.headers[name];
  return Array.isArray(value) ? value[0] : value;
}

async function readBody(request: IncomingMessage): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of request as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_BODY_BYTES) throw new EndpointError(413, "request body too large");
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString("utf8");
}

function splitAddress(address: string): [string | undefined, number] {
  const colon = address.lastIndexOf(":");
  if (colon <= 0) return [undefined, 0];
  return [address.slice(0, colon), Number(address.slice(colon + 1))];
}
