import { describe, expect, it } from "vitest";
import { statementsFor } from "../src/statements.js";
import { useTables } from "./support/fixture.js";

// Hyperdrive caches read-only queries unless they call a volatile or stable
// function (Cloudflare's docs), and wrangler dev's local Hyperdrive does not
// cache at all, so what the README claims is shown here instead: every read
// the storage sends calls now(), which PostgreSQL marks stable.
describe("Hyperdrive's query cache", () => {
  const { admin } = useTables();

  it("can answer no read of the storage: each one calls now(), a stable function", async () => {
    const [now] = await admin("SELECT provolatile FROM pg_proc WHERE oid = 'now()'::regprocedure");
    expect(now?.provolatile).toBe("s");
    for (const ttl of [false, true]) {
      const statements = statementsFor('"sessions"', ttl);
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
});
