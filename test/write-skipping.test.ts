import pg from "pg";
import { describe, expect, it } from "vitest";
import { PostgresStorage, encryptedCodec } from "../src/index.js";
import { databaseUrl } from "./support/clients.js";
import { countStatements } from "./support/counting.js";
import { sleep, useFixture } from "./support/fixture.js";

describe("skipping writes of unchanged values", () => {
  const db = useFixture(8);
  const counted = () => countStatements(db.pool);
  const writes = (statements: string[]) => statements.filter((text) => text.startsWith("INSERT")).length;
  /** A table that already exists, so that no first-write retry shows up in the counts. */
  const table = async (label: string) => {
    const name = db.table(label);
    await new PostgresStorage({ client: db.pool, tableName: name }).createTable();
    return name;
  };

  it("skips writing back exactly what was read, and writes anything else", async () => {
    const c = counted();
    const store = new PostgresStorage<{ step: string; list: number[] }>({ client: c.client, tableName: await table("skip_basic") });
    await store.write("k", { step: "a", list: [1] });
    const value = await store.read("k");
    await store.write("k", { step: "a", list: [1] });
    expect(writes(c.statements)).toBe(1);
    await store.write("k", { ...(value as { step: string; list: number[] }), list: [1, 2] });
    expect(writes(c.statements)).toBe(2);
    // Its own write counts as known: writing the same again is skipped too.
    await store.write("k", { step: "a", list: [1, 2] });
    expect(writes(c.statements)).toBe(2);
    expect(await store.read("k")).toStrictEqual({ step: "a", list: [1, 2] });
  });

  it("never skips while another write of the key is in flight", async () => {
    const c = counted();
    const store = new PostgresStorage<number>({ client: c.client, tableName: await table("skip_inflight") });
    await store.write("k", 0);
    await store.read("k");
    const first = store.write("k", 1);
    const second = store.write("k", 0); // what was read, but the database may hold 1 by now
    await Promise.all([first, second]);
    expect(writes(c.statements)).toBe(3);
  });

  it("does not trust a read that overlapped a write", async () => {
    const c = counted();
    const store = new PostgresStorage<number>({ client: c.client, tableName: await table("skip_overlap") });
    await store.write("k", 0);
    const reading = store.read("k");
    const writing = store.write("k", 1);
    const [seen] = await Promise.all([reading, writing]);
    await store.write("k", seen as number);
    // The read most likely saw 0, which the database no longer holds: written.
    // Had it seen 1, the write that put 1 there is known, and skipping is right.
    expect(writes(c.statements)).toBe(seen === 0 ? 3 : 2);
    expect(await store.read("k")).toBe(seen);
  });

  it("after a failed write, knows nothing and writes again", async () => {
    const store = new PostgresStorage<number>({ client: db.pool, tableName: await table("skip_failed") });
    await store.write("k", 1);
    let fail = true;
    const flaky = {
      query: (text: string, params: unknown[]) =>
        text.startsWith("INSERT") && fail ? Promise.reject(Object.assign(new Error("lost"), { code: "08006" })) : db.pool.query(text, params),
    };
    const c = countStatements(flaky);
    // Retrying off: this is about what the storage remembers after a failure, not about retries.
    const twin = new PostgresStorage<number>({ client: c.client, tableName: store.tableName, retry: false });
    await twin.read("k");
    await expect(twin.write("k", 2)).rejects.toThrow(/lost/);
    fail = false;
    await twin.write("k", 1); // the value read before the failed write: must not be skipped
    expect(writes(c.statements)).toBe(2);
  });

  it("after a read finds the row gone (deleted elsewhere), writes the value it knew again", async () => {
    const name = await table("skip_deleted_elsewhere");
    const c = counted();
    const store = new PostgresStorage<{ v: number }>({ client: c.client, tableName: name });
    await store.write("k", { v: 1 });
    await db.admin(`DELETE FROM "${name}" WHERE key = 'k'`);
    expect(await store.read("k")).toBeUndefined();
    await store.write("k", { v: 1 });
    expect(writes(c.statements)).toBe(2);
    expect(await store.has("k")).toBe(true);
  });

  it("does not let an older read, answered late, replace what a newer read saw", async () => {
    const name = await table("skip_late_read");
    let holdNextRead = false;
    let release: () => void = () => {};
    // A client whose next read is answered only when released: the answer is old by then.
    const slow = {
      query: async (text: string, params: unknown[]) => {
        const hold = holdNextRead && text.startsWith("SELECT value");
        holdNextRead = false;
        const result = await db.pool.query(text, params);
        if (hold) await new Promise<void>((resolve) => (release = resolve));
        return result;
      },
    };
    const c = countStatements(slow);
    const store = new PostgresStorage<{ v: string }>({ client: c.client, tableName: name });
    await store.write("k", { v: "X" });
    holdNextRead = true;
    const older = store.read("k"); // sees X, answers late
    await new Promise((resolve) => setTimeout(resolve, 50));
    await db.admin(`UPDATE "${name}" SET value = '{"v":"Y"}' WHERE key = 'k'`); // another process
    expect(await store.read("k")).toStrictEqual({ v: "Y" });
    release();
    expect(await older).toStrictEqual({ v: "X" });
    await store.write("k", { v: "X" }); // the database holds Y: this must be written
    expect(await db.admin(`SELECT value::text AS value FROM "${name}"`)).toStrictEqual([{ value: '{"v":"X"}' }]);
  });

  it("leaves another process's newer value alone when this one only wrote back what it read", async () => {
    const name = db.table("skip_processes");
    const other = new pg.Pool({ connectionString: databaseUrl(), max: 1 });
    try {
      const mine = new PostgresStorage<{ v: number }>({ client: db.pool, tableName: name });
      const theirs = new PostgresStorage<{ v: number }>({ client: other, tableName: name });
      await mine.write("k", { v: 1 });
      const read = await mine.read("k");
      await theirs.write("k", { v: 2 });
      await mine.write("k", read as { v: number }); // grammY's write-back of an untouched session
      expect(await theirs.read("k")).toStrictEqual({ v: 2 });
    } finally {
      await other.end();
    }
  });

  it("with millisecondsToLive, renews an unchanged row once half its time has passed", async () => {
    const name = await table("skip_ttl");
    const c = counted();
    const store = new PostgresStorage<number>({ client: c.client, tableName: name, millisecondsToLive: 1_000 });
    const expiry = async () => ((await db.admin(`SELECT expires_at FROM "${name}"`))[0]?.expires_at as Date).getTime();
    await store.write("k", 1);
    await store.read("k");
    await store.write("k", 1);
    expect(writes(c.statements)).toBe(1);
    const before = await expiry();
    await sleep(600);
    await store.read("k");
    await store.write("k", 1);
    expect(writes(c.statements)).toBe(2);
    expect((await expiry()) - before).toBeGreaterThanOrEqual(500);
  });

  it("writes an unchanged value that has an expiry when this storage has none (clearing it)", async () => {
    const name = db.table("skip_clear_ttl");
    await new PostgresStorage<number>({ client: db.pool, tableName: name, millisecondsToLive: 60_000 }).write("k", 1);
    const c = counted();
    const store = new PostgresStorage<number>({ client: c.client, tableName: name });
    await store.write("k", (await store.read("k")) as number);
    expect(writes(c.statements)).toBe(1);
    expect(await db.admin(`SELECT expires_at FROM "${name}"`)).toStrictEqual([{ expires_at: null }]);
  });

  it("remembers a bounded number of keys: the oldest are forgotten and written again", async () => {
    const name = await table("skip_bounded");
    const c = counted();
    const store = new PostgresStorage<number>({ client: c.client, tableName: name });
    await db.admin(`INSERT INTO "${name}" (key, value) SELECT 'k' || i, '0' FROM generate_series(0, 1499) AS i`);
    for (let i = 0; i < 1500; i += 1) await store.read(`k${i}`);
    await store.write("k1499", 0); // recent: skipped
    await store.write("k0", 0); // evicted long ago: written
    expect(writes(c.statements)).toBe(1);
  });

  it("never skips with the encrypting codec, whose output differs every time", async () => {
    const c = counted();
    const store = new PostgresStorage<number>({ client: c.client, tableName: await table("skip_encrypted"), codec: encryptedCodec({ secret: "s".repeat(32) }) });
    await store.write("k", 1);
    await store.write("k", (await store.read("k")) as number);
    expect(writes(c.statements)).toBe(2);
  });
});
