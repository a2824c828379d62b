/**
 * The library straight from its TypeScript source, as Deno and JSR load it:
 * `src/index.ts` and the `.ts` specifiers inside it resolve without
 * `--sloppy-imports`, the public names are all there, and the parts that
 * lean on the runtime's web APIs (WebCrypto for encryptedCodec, CompressionStream
 * for compressedCodec) work under Deno.
 */
import { expect } from "vitest";
import * as library from "../../../src/index.ts";
import {
  compressedCodec,
  createTableSql,
  encryptedCodec,
  jsonWithDates,
  PostgresStorageError,
  prefixKeys,
  sessionKey,
} from "../../../src/index.ts";

Deno.test("src/index.ts exports every public value", () => {
  expect(Object.keys(library).sort()).toStrictEqual([
    "PostgresStorage",
    "PostgresStorageError",
    "StorageConflictError",
    "StorageOptionError",
    "StorageValidationError",
    "compressedCodec",
    "createTableSql",
    "encryptedCodec",
    "jsonWithDates",
    "migrateFromStoragePsqlSql",
    "prefixKeys",
    "sessionKey",
  ]);
  expect(createTableSql("bot.sessions")).toMatch(
    /^CREATE SCHEMA IF NOT EXISTS "bot";\nCREATE TABLE IF NOT EXISTS "bot"\."sessions"/,
  );
  expect(prefixKeys("a").build("1")).toBe("a:1");
  expect(sessionKey("user-in-chat")({ chatId: 5, from: { id: 7 } })).toBe("5:7");
  expect(() => sessionKey("nobody" as never)).toThrow(PostgresStorageError);
});

Deno.test("encryptedCodec round-trips on Deno's WebCrypto and binds tokens to their key", async () => {
  const codec = encryptedCodec({ secret: "correct horse battery staple, 32+ chars of secret" });
  const value = { step: "confirm", at: "2024-05-06", emoji: "🔐" };
  const text = await codec.stringify(value, { key: "A" });
  expect(text).not.toContain("confirm");
  expect(await codec.parse(text, { key: "A" })).toStrictEqual(value);
  await expect(Promise.resolve().then(() => codec.parse(text, { key: "B" }))).rejects.toThrow(/cannot be decrypted/);
});

Deno.test("jsonWithDates keeps Dates", async () => {
  const value = { at: new Date("2024-05-06T07:08:09.010Z"), list: [new Date(0)] };
  expect(await jsonWithDates.parse(await jsonWithDates.stringify(value))).toStrictEqual(value);
});

/** What compressedCodec stores for `{"a":"a…"}` (2000 a's), written under Node. */
const NODE_TOKEN = '"gpsz1.eJyrVkpUslJKHAWjYBSMglEwCkbBkAdKtQDz8vgK"';

Deno.test("compressedCodec round-trips on Deno's CompressionStream, reads Node's tokens, and refuses altered ones", async () => {
  const codec = compressedCodec();
  const value = { log: Array.from({ length: 100 }, (_, i) => ({ step: i, text: `answer ${i} 🔐` })) };
  const text = await codec.stringify(value, { key: "A" });
  expect(text).toMatch(/^"gpsz1\.[\w-]+"$/);
  expect(text.length).toBeLessThan(JSON.stringify(value).length / 4);
  expect(await codec.parse(text, { key: "A" })).toStrictEqual(value);
  // Written by Node's zlib (deflateSync of '{"a":"aaaa…"}'), read here: one format on every runtime.
  expect(await codec.unwrap(NODE_TOKEN)).toBe(`{"a":"${"a".repeat(2000)}"}`);
  const altered = `${NODE_TOKEN.slice(0, 12)}${NODE_TOKEN.at(12) === "A" ? "B" : "A"}${NODE_TOKEN.slice(13)}`;
  await expect(codec.unwrap(altered)).rejects.toThrow(/not a compressedCodec token/);
  await expect(codec.unwrap(`${NODE_TOKEN.slice(0, -1)}AAAA"`)).rejects.toThrow(/not a compressedCodec token/);
  // Compress, then encrypt.
  const both = encryptedCodec({ secret: "correct horse battery staple, 32+ chars of secret", codec });
  expect(await both.parse(await both.stringify(value, { key: "A" }), { key: "A" })).toStrictEqual(value);
});
