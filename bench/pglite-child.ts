import { startPgliteServer } from "../dev/pglite-server.js";

// Serves an in-memory PGlite on loopback; prints its URL, stops on SIGTERM.
const server = await startPgliteServer();
process.stdout.write(`${server.url}\n`);
process.once("SIGTERM", () => void server.stop().then(() => process.exit(0)));
