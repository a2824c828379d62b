import { createServer, connect, type AddressInfo, type Socket } from "node:net";

/** A TCP proxy on loopback that makes every round trip through it slower. */
export interface LatencyProxy {
  /** `http://127.0.0.1:<port>`. */
  readonly origin: string;
  readonly port: number;
  /** Round-trip latency it adds, in milliseconds. */
  readonly roundTripMs: number;
  /** Connections accepted so far. */
  readonly connections: () => number;
  stop(): Promise<void>;
}

/**
 * Forwards TCP to `target` on 127.0.0.1, holding back every chunk in each
 * direction for half of `roundTripMs`: a request and its answer, an HTTP
 * request, a WebSocket upgrade or one wire-protocol exchange through a tunnel,
 * then cost `roundTripMs` more, as a network between a function and its
 * database would. Chunks keep their order and are not slowed by each other
 * (the link has latency, not a narrow bandwidth); an end or a reset travels
 * behind the data before it. Opening the TCP connection itself costs nothing
 * extra: a real network would also charge its handshakes (TCP, TLS), so
 * figures for new connections are lower bounds.
 */
export async function startLatencyProxy(target: number, roundTripMs: number): Promise<LatencyProxy> {
  const oneWay = roundTripMs / 2;
  const sockets = new Set<Socket>();
  let accepted = 0;

  // Half-open, so that an answer still on its way arrives after the asker has
  // finished sending; no Nagle, so that a small write never waits for an ACK.
  const server = createServer({ allowHalfOpen: true, noDelay: true }, (client) => {
    accepted += 1;
    const upstream = connect({ host: "127.0.0.1", port: target, allowHalfOpen: true, noDelay: true });
    sockets.add(client);
    sockets.add(upstream);
    const forget = () => {
      sockets.delete(client);
      sockets.delete(upstream);
    };
    pipeDelayed(client, upstream, oneWay);
    pipeDelayed(upstream, client, oneWay);
    client.once("close", forget);
    upstream.once("close", forget);
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(0, "127.0.0.1", () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  return {
    origin: `http://127.0.0.1:${port}`,
    port,
    roundTripMs,
    connections: () => accepted,
    async stop() {
      for (const socket of sockets) socket.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** Copies `from` to `to`, each chunk (and the end) `delayMs` after it arrived, in order. */
function pipeDelayed(from: Socket, to: Socket, delayMs: number): void {
  const queue: { due: number; run: () => void }[] = [];
  let scheduled = false;
  const drain = () => {
    scheduled = false;
    const now = performance.now();
    while (queue.length > 0 && (queue[0]?.due ?? Infinity) <= now + 0.5) queue.shift()?.run();
    if (queue.length > 0) schedule(Math.max(0, (queue[0]?.due ?? now) - now));
  };
  const schedule = (ms: number) => {
    scheduled = true;
    setTimeout(drain, ms);
  };
  const later = (run: () => void) => {
    queue.push({ due: performance.now() + delayMs, run });
    if (!scheduled) schedule(delayMs);
  };
  from.on("data", (chunk: Buffer) => later(() => void (to.destroyed || to.write(chunk))));
  from.on("end", () => later(() => to.end()));
  from.on("close", (hadError) => {
    if (hadError) later(() => to.destroy());
  });
  from.on("error", () => {}); // "close" follows, with hadError
}
