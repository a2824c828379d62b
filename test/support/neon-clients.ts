import { Client, Pool, neon, neonConfig } from "@neondatabase/serverless";
import { createClient, createPool, sql } from "@vercel/postgres";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll } from "vitest";
import ws from "ws";
import { startNeonEndpoint, useNeonEndpoint, type NeonConfigLike, type NeonEndpoint } from "../../dev/neon-endpoint.js";
import { databaseUrl, onServer, type ClientKind, type OpenClient } from "./clients.js";

/**
 * `@vercel/postgres` bundles its own copy of the Neon driver (0.9.x) with its
 * own `neonConfig`; this loads that copy, the very module instance it uses.
 */
export async function vercelNeonConfig(): Promise<NeonConfigLike> {
  const require = createRequire(import.meta.url);
  const neonEntry = createRequire(require.resolve("@vercel/postgres")).resolve("@neondatabase/serverless");
  const directory = dirname(neonEntry);
  const manifest = JSON.parse(readFileSync(join(directory, "package.json"), "utf8")) as { exports: { import: string } };
  const module = (await import(pathToFileURL(join(directory, manifest.exports.import)).href)) as {
    neonConfig: NeonConfigLike;
  };
  return module.neonConfig;
}

/**
 * @vercel/postgres accepts only Neon's pooled host names or `localhost`, so
 * the local database is addressed as `localhost` (the endpoint maps it to 127.0.0.1).
 */
export function vercelConnectionString(url = databaseUrl()): string {
  const parsed = new URL(url);
  parsed.hostname = "localhost";
  return parsed.href;
}

/** Starts an endpoint, points both copies of the Neon driver at it, and opens a client through it. */
function throughEndpoint(
  name: string,
  connect: (url: string) => Promise<{ client: OpenClient["client"]; close(): Promise<void> }>,
): ClientKind {
  return onServer(name, async (url) => {
    const endpoint = await startNeonEndpoint();
    useNeonEndpoint(neonConfig as NeonConfigLike, endpoint, ws);
    useNeonEndpoint(await vercelNeonConfig(), endpoint, ws);
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

/** Every Neon and @vercel/postgres client, each reaching the database through the local endpoint. */
export const neonClientKinds = [
  throughEndpoint("neon() HTTP", async (url) => ({ client: neon(url), close: async () => {} })),
  throughEndpoint("Neon Pool (WebSocket)", async (url) => {
    const pool = new Pool({ connectionString: url, max: 4 });
    return { client: pool, close: () => pool.end() };
  }),
  throughEndpoint("Neon Client (WebSocket)", async (url) => {
    const client = new Client(url);
    await client.connect();
    return { client, close: () => client.end() };
  }),
  throughEndpoint("@vercel/postgres sql", async (url) => {
    process.env.POSTGRES_URL = vercelConnectionString(url);
    return { client: sql, close: () => sql.end() };
  }),
  throughEndpoint("@vercel/postgres createPool()", async (url) => {
    const pool = createPool({ connectionString: vercelConnectionString(url), max: 4 });
    return { client: pool, close: () => pool.end() };
  }),
  throughEndpoint("@vercel/postgres createClient()", async (url) => {
    const client = createClient({ connectionString: vercelConnectionString(url) });
    await client.connect();
    return { client, close: () => client.end() };
  }),
];

/** A local Neon endpoint for the calling describe block, with the Neon driver pointed at it. */
export function useLocalNeon(): { readonly endpoint: NeonEndpoint } {
  const handle = {} as { endpoint: NeonEndpoint };
  beforeAll(async () => {
    handle.endpoint = await startNeonEndpoint();
    useNeonEndpoint(neonConfig as NeonConfigLike, handle.endpoint, ws);
  });
  afterAll(() => handle.endpoint.stop());
  return handle;
}
