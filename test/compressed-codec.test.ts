import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chat, exampleBot, feedbackTexts, listBot, listTexts } from "../dev/example-conversation.js";
import { startFakeBotApi, type FakeBotApi } from "../dev/fake-bot-api.js";
import { PostgresStorage, PostgresStorageError, compressedCodec, encryptedCodec } from "../src/index.js";
import { useFixture } from "./support/fixture.js";

const secret = "correct horse battery staple, 32+ chars of secret";
const notAToken = /the stored value is not a compressedCodec token/;
const big = { log: Array.from({ length: 200 }, (_, i) => ({ step: i, text: `answer number ${i}` })) };

describe("compressedCodec in a PostgresStorage", () => {
  const db = useFixture();
  let api: FakeBotApi;
  beforeAll(async () => {
    api = await startFakeBotApi();
  });
  afterAll(() => api.stop());
  const rowOf = async (name: string, key: string) =>
    (await db.admin(`SELECT value::text AS text, json_typeof(value) AS type FROM "${name}" WHERE key = $1`, [key]))[0];

  it("round-trips large values as a JSON string token, and leaves small ones as queryable JSON", async () => {
    const name = db.table("z_roundtrip");
    const store = new PostgresStorage({ client: db.pool, tableName: name, codec: compressedCodec() });
    await store.write("big", big);
    await store.write("small", { step: "idle" });
    await store.write("lookalike", "gpsz1.not-a-token");
    expect(await store.read("big")).toStrictEqual(big);
    expect(await store.read("small")).toStrictEqual({ step: "idle" });
    expect(await store.read("lookalike")).toBe("gpsz1.not-a-token");
    const row = await rowOf(name, "big");
    expect(row?.type).toBe("string");
    expect(String(row?.text)).toMatch(/^"gpsz1\.[\w-]+"$/);
    expect(String(row?.text).length).toBeLessThan(JSON.stringify(big).length / 4);
    expect(await db.admin(`SELECT value->>'step' AS step FROM "${name}" WHERE key = 'small'`)).toStrictEqual([
      { step: "idle" },
    ]);
    expect((await rowOf(name, "lookalike"))?.text).toMatch(/^"gpsz1\./); // stored compressed, so never misread
    const entries = new Map<string, unknown>();
    for await (const [key, value] of store.readAllEntries()) entries.set(key, value);
    expect(entries).toStrictEqual(
      new Map<string, unknown>([
        ["big", big],
        ["small", { step: "idle" }],
        ["lookalike", "gpsz1.not-a-token"],
      ]),
    );
  });

  it("reads what plain JSON stored before compression was turned on", async () => {
    const name = db.table("z_before");
    await new PostgresStorage({ client: db.pool, tableName: name }).write("k", big);
    const store = new PostgresStorage({ client: db.pool, tableName: name, codec: compressedCodec() });
    expect(await store.read("k")).toStrictEqual(big);
  });

  it("refuses an altered token with a clear error, and leaves the row as it was", async () => {
    const name = db.table("z_tamper");
    const store = new PostgresStorage({ client: db.pool, tableName: name, codec: compressedCodec() });
    await store.write("k", big);
    const [row] = await db.admin(`SELECT value #>> '{}' AS token FROM "${name}"`);
    const token = String(row?.token);
    const altered = `${token.slice(0, 20)}${token.at(20) === "A" ? "B" : "A"}${token.slice(21)}`;
    await db.admin(`UPDATE "${name}" SET value = to_json($1::text)`, [altered]);
    const before = await rowOf(name, "k");
    const error = await store.read("k").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PostgresStorageError);
    expect((error as Error).message).toMatch(/cannot be decoded/);
    expect((error as Error).message).toMatch(notAToken);
    expect(await rowOf(name, "k")).toStrictEqual(before);
    await db.admin(`UPDATE "${name}" SET value = to_json('gpsz9.abc'::text)`);
    await expect(store.read("k")).rejects.toThrow(/its version is "gpsz9"/);
  });

  it("compress, then encrypt: round-trips, short and without plaintext", async () => {
    const name = db.table("z_encrypted");
    const store = new PostgresStorage({
      client: db.pool,
      tableName: name,
      codec: encryptedCodec({ secret, codec: compressedCodec() }),
    });
    await store.write("k", big);
    expect(await store.read("k")).toStrictEqual(big);
    const text = String((await rowOf(name, "k"))?.text);
    expect(text).toMatch(/^"gps2\./);
    expect(text).not.toContain("answer");
    expect(text.length).toBeLessThan(JSON.stringify(big).length / 3);
  });

  it("keeps a growing @grammyjs/conversations state small, and the conversation goes on to its end", async () => {
    const name = db.table("z_conversation");
    const plainName = db.table("z_conversation_plain");
    const texts = listTexts(60);
    const compressed = listBot({ client: db.pool, tableName: name, apiRoot: api.apiRoot, codec: compressedCodec() });
    const plain = listBot({ client: db.pool, tableName: plainName, apiRoot: api.apiRoot });
    await chat(compressed, 301, texts);
    await chat(plain, 302, texts);
    const size = async (table: string) =>
      Number((await db.admin(`SELECT octet_length(value::text) AS n FROM "${table}"`))[0]?.n);
    const [compressedBytes, plainBytes] = [await size(name), await size(plainName)];
    expect(plainBytes).toBeGreaterThan(20_000);
    expect(compressedBytes).toBeLessThan(plainBytes / 5);
    await chat(compressed, 301, ["done"]);
    await chat(plain, 302, ["done"]);
    expect(api.textsTo(301)).toStrictEqual(api.textsTo(302));
    expect(api.textsTo(301).at(-1)).toMatch(/^Your list has 59 items: tea, milk/);
    expect(await db.admin(`SELECT key FROM "${name}"`)).toStrictEqual([]); // finished: no state left
  });

  it("runs the example bot's /feedback conversation with compressed conversation state", async () => {
    const name = db.table("z_example");
    const { bot } = exampleBot({ client: db.pool, tableName: name, apiRoot: api.apiRoot, codec: compressedCodec() });
    await chat(bot, 303, [...feedbackTexts(4), "4"]);
    expect(api.textsTo(303).at(-1)).toMatch(/^Thanks! You liked "The forms.*" and gave ★★★★☆\.$/);
  });
});
