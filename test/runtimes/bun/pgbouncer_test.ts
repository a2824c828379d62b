/**
 * Bun's SQL behind PgBouncer in transaction mode (test/support/pgbouncer.ts).
 * Bun names its prepared statements per connection (P0, P1…) and offers no
 * per-statement way out, so the storage's `prepare` option cannot help: the
 * README tells users to create the client with `prepare: false` there. Both
 * halves of that advice are checked here.
 */
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { PostgresStorage } from "../../../src/index.ts";
import { databaseUrl, uniqueTable } from "../../support/clients.ts";
import { pgbouncerAvailability, startPgbouncer, type Pgbouncer } from "../../support/pgbouncer.ts";
import { SQL } from "./bun-sql.ts";

const availability = pgbouncerAvailability("postgres");

/** 200 writes and reads of 20 keys at once; the SQLSTATEs of those that failed. */
async function load(prepare: boolean, url: string): Promise<string[]> {
  const sql = new SQL({ url, max: 4, prepare });
  const table = uniqueTable(`bun_bouncer_${prepare}`);
  const storage = new PostgresStorage({ client: sql, tableName: table });
  await storage.createTable();
  const failures: string[] = [];
  try {
    await Promise.all(
      Array.from({ length: 200 }, async (_, i) => {
        try {
          await storage.write(`k${i % 20}`, { i });
          await storage.read(`k${i % 20}`);
        } catch (error) {
          failures.push(String((error as { code?: unknown }).code));
        }
      }),
    );
  } finally {
    await sql.unsafe(`DROP TABLE IF EXISTS "${table}"`, []);
    await sql.close();
  }
  return failures;
}

if ("unavailable" in availability) {
  describe("Bun's SQL behind PgBouncer", () => {
    it.skip(`skipped: ${availability.unavailable}`, () => {});
  });
} else {
  const binary = availability.binary;
  describe("Bun's SQL behind PgBouncer in transaction mode", () => {
    let bouncer: Pgbouncer;
    beforeAll(async () => {
      bouncer = await startPgbouncer(binary, databaseUrl(), { poolSize: 2 });
    });
    afterAll(() => bouncer.stop());

    it("works when created with prepare: false", async () => {
      expect(await load(false, bouncer.url)).toStrictEqual([]);
    });

    it("fails with its default prepare: true, as the README says (if this passes, Bun has changed: update the README)", async () => {
      const failures = await load(true, bouncer.url);
      expect(failures.length).toBeGreaterThan(0);
      expect(failures.every((code) => code === "42P05" || code === "26000")).toBe(true);
    });
  });
}
