import { describe, expect, it } from "vitest";
import { countStatements } from "../dev/counting.js";
import { PostgresStorage } from "../src/index.js";
import { collect, rewindExpiries, useFixture } from "./support/fixture.js";

// Time on the database's clock, with no mocked timers and no waiting: the storage
// judges expiry by now(), so rewindExpiries() moving expires_at into the past is
// time passing. Checks right after a write still need their TTL not to have run out.
describe("millisecondsToLive", () => {
  const db = useFixture();

  it("a row is readable before its TTL and gone after it", async () => {
    const store = new PostgresStorage({ client: db.pool, tableName: db.table("ttl_expire"), millisecondsToLive: 800 });
    await store.write("k", { v: 1 });
    expect(await store.read("k")).toStrictEqual({ v: 1 });
    expect(await store.has("k")).toBe(true);
    await rewindExpiries(db.admin, store.tableName, 1_200);
    expect(await store.read("k")).toBeUndefined();
    expect(await store.has("k")).toBe(false);
    expect(await collect(store.readAllKeys())).toStrictEqual([]);
  });

  it("every write pushes the expiry forward", async () => {
    const name = db.table("ttl_refresh");
    const store = new PostgresStorage({ client: db.pool, tableName: name, millisecondsToLive: 1_000 });
    const expiry = async () =>
      (await db.admin(`SELECT expires_at FROM "${name}" WHERE key = 'k'`))[0]?.expires_at as Date;
    await store.write("k", { v: 1 });
    await rewindExpiries(db.admin, name, 700);
    const first = await expiry();
    await store.write("k", { v: 2 });
    const second = await expiry();
    expect(second.getTime() - first.getTime()).toBeGreaterThanOrEqual(600);
    await rewindExpiries(db.admin, name, 700); // 1400 ms after the first write: past its TTL, within the second's
    expect(await store.read("k")).toStrictEqual({ v: 2 });
  });

  it("a write without a TTL clears an earlier expiry", async () => {
    const name = db.table("ttl_clear");
    await new PostgresStorage({ client: db.pool, tableName: name, millisecondsToLive: 500 }).write("k", 1);
    await new PostgresStorage({ client: db.pool, tableName: name }).write("k", 2);
    expect(await db.admin(`SELECT expires_at FROM "${name}"`)).toStrictEqual([{ expires_at: null }]);
  });

  it("prune() deletes what expired, 256 blocks of the table per statement, and returns the count", async () => {
    const name = db.table("ttl_prune");
    const counted = countStatements(db.pool);
    const store = new PostgresStorage({ client: counted.client, tableName: name, millisecondsToLive: 600 });
    await store.write("short-lived", 1);
    // Rows of about a kilobyte: a few per 8 KB block, so the table spans more than one batch of blocks.
    await db.admin(
      `INSERT INTO "${name}" (key, value, expires_at) SELECT 'gone:' || lpad(i::text, 4, '0'), json_build_object('pad', repeat('x', 1000)), ` +
        `now() - interval '1 second' FROM generate_series(1, 2345) AS i`,
    );
    await new PostgresStorage({ client: db.pool, tableName: name }).write("forever", 1);
    const [{ blocks }] = (await db.admin(`SELECT pg_relation_size('"${name}"') / 8192 AS blocks`)) as [
      { blocks: string },
    ];
    counted.statements.length = 0;
    expect(await store.prune()).toBe(2345);
    expect(counted.statements.length).toBe(Math.ceil(Number(blocks) / 256));
    expect(counted.statements.length).toBeGreaterThan(1);
    await rewindExpiries(db.admin, name, 1_000);
    expect(await store.prune()).toBe(1);
    expect(await db.admin(`SELECT key FROM "${name}"`)).toStrictEqual([{ key: "forever" }]);
  });

  it("prune() goes on past the first 256 blocks through a query() client that answers every column as its text", async () => {
    const name = db.table("ttl_prune_text");
    // PostgreSQL's text for each column, as a client that parses nothing would hand it on: a boolean as "t".
    const text = { getTypeParser: () => (value: string) => value };
    const client = {
      query: (sql: string, values: unknown[] = []) => db.pool.query({ text: sql, values, types: text }),
    };
    const store = new PostgresStorage({ client, tableName: name, millisecondsToLive: 600 });
    await store.write("forever", 1);
    await db.admin(
      `INSERT INTO "${name}" (key, value, expires_at) SELECT 'gone:' || lpad(i::text, 4, '0'), json_build_object('pad', repeat('x', 1000)), ` +
        `now() - interval '1 second' FROM generate_series(1, 2345) AS i`,
    );
    expect(await store.prune()).toBe(2345);
    expect(await db.admin(`SELECT count(*)::int AS left FROM "${name}"`)).toStrictEqual([{ left: 1 }]);
  });

  it("prune() of a table that does not exist yet deletes nothing and creates nothing", async () => {
    const name = db.table("ttl_prune_missing");
    expect(await new PostgresStorage({ client: db.pool, tableName: name }).prune()).toBe(0);
    expect(await db.admin("SELECT to_regclass($1) AS t", [`"${name}"`])).toStrictEqual([{ t: null }]);
  });
});
