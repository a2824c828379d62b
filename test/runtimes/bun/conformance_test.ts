/**
 * The shared conformance suite (test/support/conformance.ts, unchanged) under `bun test`,
 * against DATABASE_URL: pg's Pool and postgres.js as Bun runs them, and Bun's own SQL.
 */
import { expect, it } from "vitest";
import { countStatements } from "../../../dev/counting.ts";
import { PostgresStorage } from "../../../src/index.ts";
import { clientKinds, onServer, uniqueTable } from "../../support/clients.ts";
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

it("Bun SQL: a write-back's compare-and-set goes alone, read by the count Bun's answers carry", async () => {
  const sql = new SQL({ url: process.env.DATABASE_URL ?? "", max: 2 });
  const tableName = uniqueTable("bun_counted");
  try {
    const counted = countStatements(sql);
    const storage = new PostgresStorage<{ n: number }>({ client: counted.client, tableName });
    await storage.write("k", { n: 1 });
    const session = (await storage.read("k")) as { n: number };
    session.n = 2;
    counted.statements.length = 0;
    await storage.write("k", session);
    expect(counted.statements).toHaveLength(1);
    expect(counted.statements[0]).toMatch(/^UPDATE /);
    expect(await storage.read("k")).toStrictEqual({ n: 2 });
  } finally {
    await sql.unsafe(`DROP TABLE IF EXISTS "${tableName}"`);
    await sql.close();
  }
});
