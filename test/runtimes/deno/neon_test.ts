/**
 * The shared conformance suite under Deno through Neon's serverless driver:
 * `neon()` over HTTP (Deno's own fetch) and Pool/Client over WebSockets
 * (Deno's own WebSocket), against the local stand-in for Neon's proxy
 * (dev/neon-endpoint.ts, run here under Deno's Node compatibility).
 */
import { Client, neon, neonConfig, Pool } from "@neondatabase/serverless";
import { type NeonConfigLike, startNeonEndpoint, useNeonEndpoint } from "../../../dev/neon-endpoint.ts";
import { type ClientKind, onServer, type OpenClient } from "../../support/clients.ts";
import { conformanceSuite } from "../../support/conformance.ts";

function throughEndpoint(
  name: string,
  connect: (url: string) => Promise<{ client: OpenClient["client"]; close(): Promise<void> }>,
): ClientKind {
  return onServer(name, async (url) => {
    const endpoint = await startNeonEndpoint();
    useNeonEndpoint(neonConfig as NeonConfigLike, endpoint, globalThis.WebSocket);
    const { client, close } = await connect(url);
    return {
      client,
      async close() {
        await close();
        await endpoint.stop();
      },
    };
  });
}

const kinds = [
  throughEndpoint("neon() HTTP", (url) => Promise.resolve({ client: neon(url), close: () => Promise.resolve() })),
  throughEndpoint("Neon Pool (WebSocket)", (url) => {
    const pool = new Pool({ connectionString: url, max: 4 });
    // With Deno's WebSocket, end() resolves before the pool's sockets are closed, and
    // when the server closes them the driver reports "Unexpected EOF" as an 'error'
    // event on the pool; unheard, that would be an uncaught error. Only errors after
    // end() are let pass: one while the suite runs still fails it.
    let ending = false;
    pool.on("error", (error: Error) => {
      if (!ending) throw error;
    });
    return Promise.resolve({
      client: pool,
      close: () => {
        ending = true;
        return pool.end();
      },
    });
  }),
  throughEndpoint("Neon Client (WebSocket)", async (url) => {
    const client = new Client(url);
    await client.connect();
    return { client, close: () => client.end() };
  }),
];

for (const kind of kinds) conformanceSuite(kind);
