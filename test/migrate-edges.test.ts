import { describe, expect, it } from "vitest";
import { PostgresStorage, StorageOptionError, migrateFromStoragePsqlSql, type KeyBuilderOption } from "../src/index.js";
import { collect, useFixture } from "./support/fixture.js";

// What the mutation run of migrate.ts (npm run mutate:database) found no test of: a target table in a schema that
// does not exist yet, and which option each refusal names.

describe("migrateFromStoragePsqlSql edges", () => {
  const db = useFixture();
  const tables = () => ({ from: db.table("mig_from"), space: db.table("mig_space") });

  it("creates the target's schema when it is missing, and copies into it", async () => {
    const { from, space } = tables();
    await db.admin(`CREATE TABLE "${from}" (key varchar PRIMARY KEY, value text)`);
    await db.admin(`INSERT INTO "${from}" (key, value) VALUES ('1', '{"count":1}'), ('2', NULL)`);
    try {
      await db.pool.query(migrateFromStoragePsqlSql({ from, to: `${space}.sessions` }));
      const storage = new PostgresStorage({ client: db.pool, tableName: `${space}.sessions`, createTable: false });
      expect(await collect(storage.readAllEntries())).toStrictEqual([["1", { count: 1 }]]);
    } finally {
      await db.admin(`DROP SCHEMA IF EXISTS "${space}" CASCADE`);
    }
  });

  /** The option a call refuses, and its message. */
  const refusal = (options: Parameters<typeof migrateFromStoragePsqlSql>[0]) => {
    try {
      migrateFromStoragePsqlSql(options);
    } catch (error) {
      expect(error).toBeInstanceOf(StorageOptionError);
      return { option: (error as StorageOptionError).option, message: (error as Error).message };
    }
    return expect.fail("did not throw");
  };

  it("names the option it refuses", () => {
    expect(refusal({ from: "a.b.c" }).option).toBe("from");
    expect(refusal({ to: "a.b.c" })).toStrictEqual({
      option: "to",
      message: 'to "a.b.c" has more than one dot; write "table" or "schema.table"',
    });
    expect(refusal({ to: "" }).option).toBe("to");
    expect(refusal({ from: "x", to: "x" }).option).toBe("to");
  });

  it("takes only a key builder that puts its prefix before every key", () => {
    const onlyInJavaScript = /^keyBuilder: SQL can only put a prefix before each key/;
    const refused: KeyBuilderOption[] = [
      // A function, even one that carries a prefix.
      Object.assign((key: string) => `bot1:${key}`, { prefix: "bot1:" }),
      // Right for a user's key, wrong for a group's.
      { prefix: "bot1:", build: (key: string) => (key.startsWith("-") ? `group:${key}` : `bot1:${key}`) },
      // Right for a group's key, wrong for a user's.
      { prefix: "bot1:", build: (key: string) => (key.startsWith("-") ? `bot1:${key}` : `user:${key}`) },
    ];
    for (const keyBuilder of refused) {
      const { option, message } = refusal({ keyBuilder });
      expect(option).toBe("keyBuilder");
      expect(message).toMatch(onlyInJavaScript);
    }
    for (const prefix of ["a\0:", "a\ud800:"]) {
      expect(refusal({ keyBuilder: { prefix, build: (key: string) => `${prefix}${key}` } })).toStrictEqual({
        option: "keyBuilder",
        message: "keyBuilder: the prefix contains U+0000 or a lone surrogate",
      });
    }
    // The same prefix as an object that does build prefix + key is fine.
    expect(
      migrateFromStoragePsqlSql({ keyBuilder: { prefix: "bot1:", build: (key: string) => `bot1:${key}` } }),
    ).toMatch(/SELECT E'bot1:' \|\| key, value::json/);
  });
});
