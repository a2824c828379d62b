import type { TestProject } from "vitest/node";
import { startPgliteServer } from "../../dev/pglite-server.js";

declare module "vitest" {
  export interface ProvidedContext {
    /** The PostgreSQL every server-backed client in the suite connects to. */
    databaseUrl: string;
    /** Which database that is: the server at DATABASE_URL, or PGlite behind its socket server. */
    backend: "postgres" | "pglite";
  }
}

/**
 * Tests run against the PostgreSQL at DATABASE_URL. Without it, one in-process
 * PGlite is served over the wire protocol on loopback, so that pg and
 * postgres.js run the same suite on a machine with nothing installed.
 */
export default async function setup(project: TestProject): Promise<() => Promise<void>> {
  const url = process.env.DATABASE_URL;
  if (url) {
    project.provide("databaseUrl", url);
    project.provide("backend", "postgres");
    return async () => {};
  }
  const server = await startPgliteServer();
  project.provide("databaseUrl", server.url);
  project.provide("backend", "pglite");
  console.log(`DATABASE_URL is unset: tests run on PGlite at ${server.url}`);
  return server.stop;
}
