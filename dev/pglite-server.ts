// PGlite served over PostgreSQL's wire protocol on loopback: the suite without DATABASE_URL, bench, npm run dev.
import { PGlite } from "@electric-sql/pglite";
import { PGLiteSocketServer } from "@electric-sql/pglite-socket";

/** A PGlite database served over PostgreSQL's wire protocol on loopback. */
export interface PgliteServer {
  /** Connection string for pg, postgres.js and psql. */
  readonly url: string;
  /** Stops the server and closes the database. */
  stop(): Promise<void>;
}

/**
 * Starts PGlite (in memory, or persisted in `dataDir`) behind a socket server
 * on 127.0.0.1 and a free port. PGlite is one session; the server multiplexes
 * many connections onto it.
 */
export async function startPgliteServer(options: { dataDir?: string; port?: number } = {}): Promise<PgliteServer> {
  const db = await PGlite.create(options.dataDir);
  const server = new PGLiteSocketServer({ db, host: "127.0.0.1", port: options.port ?? 0, maxConnections: 200 });
  await server.start();
  return {
    url: `postgres://postgres@${server.getServerConn()}/postgres`,
    async stop() {
      await server.stop();
      await db.close();
    },
  };
}
