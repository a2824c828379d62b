/**
 * The shared conformance suite (test/support/conformance.ts, unchanged) under `bun test`,
 * against DATABASE_URL: pg's Pool and postgres.js as Bun runs them, and Bun's own SQL.
 */
import { clientKinds, onServer } from "../../support/clients.ts";
import { conformanceSuite } from "../../support/conformance.ts";
import { SQL } from "./bun-sql.ts";

for (const kind of clientKinds.filter((kind) => kind.name === "pg Pool" || kind.name === "postgres.js"))
  conformanceSuite(kind);

conformanceSuite(
  onServer("Bun SQL", async (url) => {
    const sql = new SQL({ url, max: 4 });
    return { client: sql, close: () => sql.close() };
  }),
);
