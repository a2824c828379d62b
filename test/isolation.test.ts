import { readFileSync, readdirSync } from "node:fs";
import { join, relative } from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { TEST_NAME_PREFIX, uniqueTable } from "./support/clients.js";

// With DATABASE_URL set, the suite runs in that database: it must touch nothing but what it creates,
// and what it creates must be recognisable (to clean up after an interrupted run, say).
describe("what the tests create in the database at DATABASE_URL", () => {
  it("is named with the tests' prefix, within PostgreSQL's 63 characters", () => {
    expect(TEST_NAME_PREFIX).toBe("gps_test_");
    for (const label of ["x", "skip_deleted_elsewhere", "postgresjs_unprepared"]) {
      const name = uniqueTable(label);
      expect(name.startsWith(`${TEST_NAME_PREFIX}${label}_`)).toBe(true);
      expect(name.length).toBeLessThanOrEqual(63);
    }
    expect(uniqueTable("x")).not.toBe(uniqueTable("x"));
    expect(() => uniqueTable("l".repeat(50))).toThrow(/longer than 63/);
  });

  it("is never a table or schema named in a literal: DDL the tests run names what uniqueTable() made", () => {
    const root = fileURLToPath(new URL(".", import.meta.url));
    const files = readdirSync(root, { recursive: true, encoding: "utf8" }).filter(
      (file) => /\.tsx?$/.test(file) && file !== "isolation.test.ts",
    );
    // DDL sent through a client (admin(), query(), exec(), unsafe()), and the name it creates or drops.
    const ddl =
      /\b(?:admin|query|exec|unsafe)\(\s*[`"'](?:BEGIN;\s*)?(?:CREATE|DROP)\s+(?:TABLE|SCHEMA)\s+(?:IF\s+(?:NOT\s+)?EXISTS\s+)?"?(\S+)/g;
    let statements = 0;
    const literal = files.flatMap((file) =>
      [...readFileSync(join(root, file), "utf8").matchAll(ddl)].flatMap((match) => {
        statements += 1;
        return match[1]?.startsWith("${") ? [] : [`${relative(root, join(root, file))}: ${match[0]}`];
      }),
    );
    expect(statements).toBeGreaterThan(10);
    expect(literal).toStrictEqual([]);
    // What it would catch (this file is left out of the scan for these):
    const caught = (code: string) => [...code.matchAll(ddl)].map((match) => match[1]);
    expect(caught('await admin("CREATE TABLE sessions (k text)")')).toStrictEqual(["sessions"]);
    expect(caught('await db.exec(`DROP SCHEMA IF EXISTS "app" CASCADE`)')).toStrictEqual(['app"']);
    expect(caught('await admin(`DROP TABLE IF EXISTS "${name}"`)')[0]).toMatch(/^\$\{/);
  });
});
