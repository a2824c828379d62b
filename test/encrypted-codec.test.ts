import { describe, expect, it } from "vitest";
import { PostgresStorage, PostgresStorageError, encryptedCodec, jsonWithDates } from "../src/index.js";
import { useFixture } from "./support/fixture.js";

const secret = "correct horse battery staple, 32+ chars of secret";
const otherSecret = "an entirely different secret of enough length!!";

describe("encryptedCodec", () => {
  const db = useFixture();
  const value = { step: "confirm", name: "Ada Lovelace", card: "4111 1111 1111 1111", emoji: "🔐" };

  it("round-trips through the database, and the stored text holds no plaintext", async () => {
    const name = db.table("enc_roundtrip");
    const store = new PostgresStorage({ client: db.pool, tableName: name, codec: encryptedCodec({ secret }) });
    await store.write("k", value);
    expect(await store.read("k")).toStrictEqual(value);
    const [row] = await db.admin(`SELECT value::text AS text, json_typeof(value) AS type FROM "${name}"`);
    expect(row?.type).toBe("string");
    const stored = String(row?.text);
    for (const plain of ["Ada", "Lovelace", "4111", "confirm", "step"]) expect(stored).not.toContain(plain);
    expect(stored).toMatch(/^"gps1\.[\w-]+\.[\w-]+"$/);
  });

  it("writes the same value differently every time (fresh IV)", async () => {
    const codec = encryptedCodec({ secret });
    expect(await codec.stringify(value)).not.toBe(await codec.stringify(value));
  });

  it("fails clearly with the wrong secret, never returning garbage", async () => {
    const name = db.table("enc_wrongkey");
    await new PostgresStorage({ client: db.pool, tableName: name, codec: encryptedCodec({ secret }) }).write("k", value);
    const wrong = new PostgresStorage({ client: db.pool, tableName: name, codec: encryptedCodec({ secret: otherSecret }) });
    const error = await wrong.read("k").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PostgresStorageError);
    expect((error as Error).message).toMatch(/cannot be decrypted: it was encrypted with another secret, or it has been altered/);
  });

  it("fails clearly when the ciphertext was tampered with", async () => {
    const name = db.table("enc_tamper");
    const store = new PostgresStorage({ client: db.pool, tableName: name, codec: encryptedCodec({ secret }) });
    await store.write("k", value);
    const [row] = await db.admin(`SELECT value #>> '{}' AS token FROM "${name}"`);
    const token = String(row?.token);
    const flipped = token.slice(0, -3) + (token.at(-3) === "A" ? "B" : "A") + token.slice(-2);
    await db.admin(`UPDATE "${name}" SET value = to_json($1::text)`, [flipped]);
    await expect(store.read("k")).rejects.toThrow(/has been altered/);
    await db.admin(`UPDATE "${name}" SET value = '{"step": "plain"}'`);
    await expect(store.read("k")).rejects.toThrow(/not written by encryptedCodec/);
  });

  it("rotates secrets: writes with the first, reads with any", async () => {
    const name = db.table("enc_rotate");
    await new PostgresStorage({ client: db.pool, tableName: name, codec: encryptedCodec({ secret: otherSecret }) }).write("old", value);
    const rotated = new PostgresStorage({ client: db.pool, tableName: name, codec: encryptedCodec({ secret: [secret, otherSecret] }) });
    expect(await rotated.read("old")).toStrictEqual(value);
    await rotated.write("new", value);
    const current = new PostgresStorage({ client: db.pool, tableName: name, codec: encryptedCodec({ secret }) });
    expect(await current.read("new")).toStrictEqual(value);
  });

  it("encrypts what an inner codec produced", async () => {
    const store = new PostgresStorage({ client: db.pool, tableName: db.table("enc_inner"), codec: encryptedCodec({ secret, codec: jsonWithDates }) });
    const dated = { at: new Date("2025-01-01T00:00:00.000Z") };
    await store.write("k", dated);
    expect(await store.read("k")).toStrictEqual(dated);
  });

  it("refuses a short secret", () => {
    expect(() => encryptedCodec({ secret: "hunter2" })).toThrow(/at least 32 characters/);
    expect(() => encryptedCodec({ secret: [] })).toThrow(/at least 32 characters/);
  });
});
