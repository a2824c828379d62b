import { describe, expect, it } from "vitest";
import { PostgresStorage, type QueryParameter } from "../src/index.js";
import { statementsFor } from "../src/statements.js";
import { collect, useFixture } from "./support/fixture.js";

// Hyperdrive caches read-only queries unless they call a volatile or stable
// function (Cloudflare's docs), and wrangler dev's local Hyperdrive does not
// cache at all, so what the README claims is shown here instead: every read
// the storage sends calls now(), which PostgreSQL marks stable.
describe("Hyperdrive's query cache", () => {
  const db = useFixture();
  const { admin } = db;

  it("can answer no read of the storage: each one calls now(), a stable function", async () => {
    const [now] = await admin("SELECT provolatile FROM pg_proc WHERE oid = 'now()'::regprocedure");
    expect(now?.provolatile).toBe("s");
    for (const ttl of [false, true]) {
      const statements = statementsFor('"sessions"', { withTtl: ttl });
      const reads = [statements.read, statements.has];
      for (const values of [false, true]) {
        for (const first of [false, true]) {
          for (const bounded of [false, true]) reads.push(statements.page({ values, first, bounded }));
        }
      }
      for (const read of reads) {
        expect(read.text).toMatch(/^SELECT /);
        expect(read.text).toContain("now()");
      }
    }
  });

  it("answers no read from a cache that follows that rule: each read reflects another connection's write before it", async () => {
    // Hyperdrive caches the result of a read-only query unless it calls a function PostgreSQL marks volatile or
    // stable. This client caches by that rule (by text and parameters), so a read the storage sent without such a
    // call would come back stale after another connection's write.
    const volatile = new Set(
      (
        await db.admin(
          "SELECT DISTINCT proname FROM pg_proc WHERE provolatile <> 'i' AND proname ~ '^[a-z_][a-z0-9_]*$'",
        )
      ).map((row) => row.proname as string),
    );
    const cacheable = (text: string) =>
      /^\s*SELECT\b/i.test(text) &&
      ![...text.matchAll(/\b([a-z_][a-z0-9_]*)\s*\(/gi)].some((call) => volatile.has((call[1] ?? "").toLowerCase()));
    const cache = new Map<string, unknown[]>();
    let cached = 0;
    const hyperdrive = {
      async query(text: string, params: QueryParameter[]) {
        const id = JSON.stringify([text, params]);
        const hit = cache.get(id);
        if (hit !== undefined) {
          cached += 1;
          return hit;
        }
        const { rows } = await db.pool.query(text, params);
        if (cacheable(text)) cache.set(id, rows);
        return rows;
      },
    };
    expect(cacheable("SELECT value FROM t WHERE key = $1")).toBe(true);
    expect(cacheable("SELECT 1 FROM t WHERE expires_at > now()")).toBe(false);

    for (const millisecondsToLive of [undefined, 60_000]) {
      const name = db.table("probe_cache");
      const storage = new PostgresStorage<number>({ client: hyperdrive, tableName: name, millisecondsToLive });
      const other = new PostgresStorage<number>({ client: db.pool, tableName: name, millisecondsToLive });
      await storage.write("k", 1);
      expect([await storage.read("k"), await storage.has("k")]).toStrictEqual([1, true]);
      expect(await collect(storage.readAllEntries())).toStrictEqual([["k", 1]]);
      await other.write("k", 2);
      await other.write("j", 3);
      expect([await storage.read("k"), await storage.has("k")]).toStrictEqual([2, true]);
      expect(await collect(storage.readAllEntries())).toStrictEqual([
        ["j", 3],
        ["k", 2],
      ]);
      await other.delete("k");
      expect([await storage.read("k"), await storage.has("k")]).toStrictEqual([undefined, false]);
      expect(await collect(storage.readAllKeys())).toStrictEqual(["j"]);
    }
    expect(cached).toBe(0);
  });
});
