/**
 * compressedCodec under Bun: its unit tests as they are (test/unit/compressed-codec.test.ts,
 * on Bun's CompressionStream and WebCrypto), then through the storage on Bun's own SQL,
 * with a growing @grammyjs/conversations state that must stay small and finish.
 */
import "../../unit/compressed-codec.test.ts";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { chat, listBot, listTexts } from "../../../dev/example-conversation.ts";
import { startFakeBotApi, type FakeBotApi } from "../../../dev/fake-bot-api.ts";
import { compressedCodec, encryptedCodec, PostgresStorage } from "../../../src/index.ts";
import { databaseUrl, uniqueTable } from "../../support/clients.ts";
import { SQL, type BunSql } from "./bun-sql.ts";

describe("compressedCodec through Bun's SQL", () => {
  let api: FakeBotApi;
  let sql: BunSql;
  const table = uniqueTable("bun_compressed");
  beforeAll(async () => {
    api = await startFakeBotApi();
    sql = new SQL({ url: databaseUrl(), max: 2 });
  });
  afterAll(async () => {
    await sql.unsafe(`DROP TABLE IF EXISTS "${table}"`, []);
    await sql.close();
    await api.stop();
  });

  it("stores a growing conversation compressed, and the conversation finishes", async () => {
    await chat(
      listBot({ client: sql, tableName: table, apiRoot: api.apiRoot, codec: compressedCodec() }),
      401,
      listTexts(30),
    );
    const [row] = (await sql.unsafe(`SELECT value::text AS text FROM "${table}"`, [])) as { text: string }[];
    expect(row?.text).toMatch(/^"gpsz1\.[\w-]+"$/);
    expect(row?.text.length).toBeLessThan(2_000);
    await chat(listBot({ client: sql, tableName: table, apiRoot: api.apiRoot, codec: compressedCodec() }), 401, [
      "done",
    ]);
    expect(api.textsTo(401).at(-1)).toMatch(/^Your list has 29 items: tea, milk/);
  });

  it("compress, then encrypt, round-trips", async () => {
    const storage = new PostgresStorage({
      client: sql,
      tableName: table,
      codec: encryptedCodec({ secret: "correct horse battery staple, 32+ chars of secret", codec: compressedCodec() }),
    });
    const value = { log: Array.from({ length: 200 }, (_, i) => `step ${i}`) };
    await storage.write("both", value);
    expect(await storage.read("both")).toStrictEqual(value);
  });
});
