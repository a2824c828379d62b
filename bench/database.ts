import { spawn } from "node:child_process";
import { fileURLToPath } from "node:url";

/** The database the benchmark runs on. */
export interface BenchDatabase {
  readonly url: string;
  /** What it is, for the report. */
  readonly label: string;
  /**
   * Whether each connection is its own session. PGlite's socket server runs
   * every connection in one session, so statements prepared by name on two
   * connections collide there.
   */
  readonly sessionPerConnection: boolean;
  stop(): Promise<void>;
}

/**
 * The server at DATABASE_URL, or PGlite served from a child process, so that
 * the database's memory never counts as the benchmark's.
 */
export async function startDatabase(): Promise<BenchDatabase> {
  const url = process.env.DATABASE_URL;
  if (url) return { url, label: "PostgreSQL at DATABASE_URL", sessionPerConnection: true, stop: async () => {} };
  const child = spawn(
    process.execPath,
    ["--import", "tsx", fileURLToPath(new URL("./pglite-child.ts", import.meta.url))],
    {
      stdio: ["ignore", "pipe", "inherit"],
    },
  );
  const served = await new Promise<string>((resolve, reject) => {
    child.stdout.once("data", (chunk: Buffer) => resolve(chunk.toString("utf8").trim()));
    child.once("exit", (code) => reject(new Error(`the PGlite server exited with ${code}`)));
  });
  return {
    url: served,
    label: "PGlite (in memory, in a child process, over its socket server)",
    sessionPerConnection: false,
    async stop() {
      const exited = new Promise((resolve) => child.once("exit", resolve));
      child.kill("SIGTERM");
      await exited;
    },
  };
}
