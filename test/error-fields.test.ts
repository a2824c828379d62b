import { describe, expect, it } from "vitest";
import { z } from "zod";
import {
  PostgresStorage,
  PostgresStorageError,
  StorageOptionError,
  StorageValidationError,
  encryptedCodec,
  migrateFromStoragePsqlSql,
  prefixKeys,
  sessionKey,
  type QueryClient,
  type QueryParameter,
} from "../src/index.js";
import { useFixture } from "./support/fixture.js";
import { rejection } from "./support/rejections.js";

/** The error a call throws (it must throw). */
function thrown(call: () => unknown): PostgresStorageError {
  try {
    call();
  } catch (error) {
    expect(error).toBeInstanceOf(PostgresStorageError);
    return error as PostgresStorageError;
  }
  return expect.fail("did not throw");
}

describe("errors carry fields, not only text", () => {
  const db = useFixture();

  /**
   * A client whose statements reach the database and run, after which the
   * answer is lost, as when the connection breaks between commit and reply:
   * the first `failures` statements (all, by default) are lost that way.
   */
  const losingAnswers = (failures = Infinity) => {
    const sent: string[] = [];
    const client: QueryClient = {
      async query(text: string, params: QueryParameter[]) {
        sent.push(text);
        const result = await db.pool.query(text, params);
        if (sent.length <= failures)
          throw Object.assign(new Error("Connection terminated unexpectedly"), { code: "ECONNRESET" });
        return result;
      },
    };
    return { client, sent };
  };

  it("an option refused is a StorageOptionError naming the option, before anything is sent", () => {
    const client = db.pool;
    const refusals: [string, () => unknown][] = [
      ["client", () => new PostgresStorage({ client: {} as QueryClient })],
      ["tableName", () => new PostgresStorage({ client, tableName: "a.b.c" })],
      ["keyBuilder", () => new PostgresStorage({ client, keyBuilder: 5 as never })],
      ["codec", () => new PostgresStorage({ client, codec: {} as never })],
      ["schema", () => new PostgresStorage({ client, schema: {} as never })],
      ["onInvalid", () => new PostgresStorage({ client, onInvalid: "ignore" as never })],
      ["millisecondsToLive", () => new PostgresStorage({ client, millisecondsToLive: -1 })],
      ["retry", () => new PostgresStorage({ client, retry: { attempts: 0 } })],
      ["prefix", () => prefixKeys("a:b")],
      ["separator", () => prefixKeys("a", "")],
      ["strategy", () => sessionKey("nobody" as never)],
      ["secret", () => encryptedCodec({ secret: "short" })],
      ["from", () => migrateFromStoragePsqlSql({ from: "" })],
      ["to", () => migrateFromStoragePsqlSql({ from: "x", to: "x" })],
    ];
    for (const [option, refuse] of refusals) {
      const error = thrown(refuse);
      expect(error, option).toBeInstanceOf(StorageOptionError);
      expect({ option: (error as StorageOptionError).option, name: error.name }).toStrictEqual({
        option,
        name: "StorageOptionError",
      });
      expect({
        operation: error.operation,
        key: error.key,
        table: error.table,
        inDoubt: error.inDoubt,
        code: error.code,
      }).toStrictEqual({
        operation: undefined,
        key: undefined,
        table: undefined,
        inDoubt: false,
        code: undefined,
      });
    }
  });

  it("a database error names its operation, key and table; a failed read is never in doubt", async () => {
    const storage = new PostgresStorage({ client: db.pool, tableName: db.table("fields_read") });
    await storage.write("k", 1);
    await db.admin(`ALTER TABLE "${storage.tableName}" RENAME COLUMN value TO renamed`);
    const error = await rejection(storage.read("k"));
    expect(error).not.toBeInstanceOf(StorageOptionError);
    expect({ operation: error.operation, key: error.key, table: error.table, inDoubt: error.inDoubt }).toStrictEqual({
      operation: "read",
      key: "k",
      table: storage.tableName,
      inDoubt: false,
    });
    expect(error.code).toBe("42703");
    expect(error.message).toContain(`read of key "k" in table "${storage.tableName}" failed`);
  });

  it("a value refused before sending names the write, and is not in doubt", async () => {
    const storage = new PostgresStorage<unknown>({ client: db.pool, tableName: db.table("fields_value") });
    const error = await rejection(storage.write("big", { n: 1n }));
    expect({ operation: error.operation, key: error.key, table: error.table, inDoubt: error.inDoubt }).toStrictEqual({
      operation: "write",
      key: "big",
      table: storage.tableName,
      inDoubt: false,
    });

    const checked = new PostgresStorage({
      client: db.pool,
      tableName: db.table("fields_schema"),
      schema: z.object({ n: z.number() }),
    });
    const invalid = await rejection(checked.write("bad", { n: "one" } as never));
    expect(invalid).toBeInstanceOf(StorageValidationError);
    expect({ operation: invalid.operation, key: invalid.key, table: invalid.table }).toStrictEqual({
      operation: "write",
      key: "bad",
      table: checked.tableName,
    });
  });

  it("readAll* without a way to parse keys is an option error, raised in readAll", async () => {
    const storage = new PostgresStorage({
      client: db.pool,
      tableName: db.table("fields_scan"),
      keyBuilder: (key) => `x${key}`,
    });
    const error = await rejection(storage.readAllKeys().next());
    expect(error).toBeInstanceOf(StorageOptionError);
    expect({
      option: (error as StorageOptionError).option,
      operation: error.operation,
      table: error.table,
    }).toStrictEqual({
      option: "keyBuilder",
      operation: "readAll",
      table: storage.tableName,
    });
  });

  it("update() whose answer is lost after it applied: one statement, not retried, in doubt, and applied once", async () => {
    const name = db.table("fields_update_lost");
    await new PostgresStorage({ client: db.pool, tableName: name }).write("k", { a: 1 });
    const { client, sent } = losingAnswers(1);
    const storage = new PostgresStorage<Record<string, number>>({
      client,
      tableName: name,
      retry: { attempts: 5, baseDelayMs: 0 },
    });
    const error = await rejection(storage.update("k", { b: 2 }));
    expect(sent).toHaveLength(1);
    expect({ operation: error.operation, key: error.key, inDoubt: error.inDoubt }).toStrictEqual({
      operation: "update",
      key: "k",
      inDoubt: true,
    });
    expect(error.message).toMatch(/may have taken effect and was not retried/);
    expect(await new PostgresStorage({ client: db.pool, tableName: name }).read("k")).toStrictEqual({ a: 1, b: 2 });
  });

  it("write() and delete() retry a lost answer (they may run twice); if every try is lost they are in doubt", async () => {
    const name = db.table("fields_write_lost");
    const recovering = losingAnswers(1);
    await new PostgresStorage({
      client: recovering.client,
      tableName: name,
      retry: { attempts: 3, baseDelayMs: 0 },
    }).write("k", 1);
    expect(recovering.sent.filter((text) => text.startsWith("INSERT"))).toHaveLength(2);

    const lost = losingAnswers();
    const storage = new PostgresStorage<number>({
      client: lost.client,
      tableName: name,
      retry: { attempts: 2, baseDelayMs: 0 },
    });
    for (const [operation, attempt] of [
      ["write", () => storage.write("k", 2)],
      ["delete", () => storage.delete("k")],
    ] as const) {
      const error = await rejection(attempt());
      expect({ operation: error.operation, key: error.key, table: error.table, inDoubt: error.inDoubt }).toStrictEqual({
        operation,
        key: "k",
        table: name,
        inDoubt: true,
      });
    }
    const read = await rejection(storage.read("k"));
    expect({ operation: read.operation, inDoubt: read.inDoubt }).toStrictEqual({ operation: "read", inDoubt: false });
  });

  it("a write stays in doubt when a later try fails in a way that did not apply: the first one may have", async () => {
    const name = db.table("fields_doubt_first");
    let tries = 0;
    const client: QueryClient = {
      async query(text: string, params: QueryParameter[]) {
        tries += 1;
        if (tries > 1) throw Object.assign(new Error("connect ECONNREFUSED 127.0.0.1:5432"), { code: "ECONNREFUSED" });
        await db.pool.query(text, params);
        throw Object.assign(new Error("Connection terminated unexpectedly"), { code: "ECONNRESET" });
      },
    };
    await new PostgresStorage({ client: db.pool, tableName: name }).createTable();
    const storage = new PostgresStorage<number>({ client, tableName: name, retry: { attempts: 3, baseDelayMs: 0 } });
    const error = await rejection(storage.write("k", 7));
    expect(tries).toBe(3);
    expect(error.code).toBeUndefined();
    expect(error.message).toContain("ECONNREFUSED");
    expect(error.inDoubt).toBe(true);
    // And it had: the first try wrote the row.
    expect(await new PostgresStorage<number>({ client: db.pool, tableName: name }).read("k")).toBe(7);
  });
});
