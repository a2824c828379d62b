import { createDecipheriv, hkdfSync } from "node:crypto";
import { describe, expect, it } from "vitest";
import {
  PostgresStorage,
  PostgresStorageError,
  encryptedCodec,
  jsonWithDates,
  prefixKeys,
  type Codec,
} from "../src/index.js";
import { useFixture } from "./support/fixture.js";

const secret = "correct horse battery staple, 32+ chars of secret";
const otherSecret = "an entirely different secret of enough length!!";
const value = { step: "confirm", name: "Ada Lovelace", card: "4111 1111 1111 1111", emoji: "🔐" };

const notAToken = /the stored value is not an encryptedCodec token/;
const cannotDecrypt = /cannot be decrypted: it was encrypted with another secret, for another key, or altered/;

/** The token inside a stored text, and back. */
const tokenOf = (text: string) => JSON.parse(text) as string;
const stored = (token: string) => JSON.stringify(token);
const bytes = (segment: string) => Buffer.from(segment, "base64url");

/** Parses under `key`, as a promise whatever the codec throws synchronously. */
const parse = (codec: Codec, text: string, key: string) => Promise.resolve().then(() => codec.parse(text, { key }));

describe("encryptedCodec, called directly", () => {
  const codec = encryptedCodec({ secret });

  it("round-trips under a key, and the token holds no plaintext", async () => {
    const text = await codec.stringify(value, { key: "A" });
    expect(await codec.parse(text, { key: "A" })).toStrictEqual(value);
    expect(text).toMatch(/^"gps2\.[\w-]{16}\.[\w-]+"$/);
    for (const plain of ["Ada", "Lovelace", "4111", "confirm", "step"]) expect(text).not.toContain(plain);
  });

  it("writes the same value differently every time (fresh IV)", async () => {
    expect(await codec.stringify(value, { key: "A" })).not.toBe(await codec.stringify(value, { key: "A" }));
  });

  it("binds each token to its key: the same value under two keys does not cross-decrypt", async () => {
    const forA = await codec.stringify(value, { key: "A" });
    const forB = await codec.stringify(value, { key: "B" });
    await expect(parse(codec, forA, "B")).rejects.toThrow(cannotDecrypt);
    await expect(parse(codec, forB, "A")).rejects.toThrow(cannotDecrypt);
    // Keys that differ only where a naive concatenation would blur them.
    await expect(parse(codec, await codec.stringify(1, { key: "bot1:42" }), "bot1:4")).rejects.toThrow(cannotDecrypt);
    await expect(parse(codec, await codec.stringify(1, { key: "" }), " ")).rejects.toThrow(cannotDecrypt);
  });

  it("fails clearly with the wrong secret, never returning garbage", async () => {
    const text = await codec.stringify(value, { key: "A" });
    await expect(parse(encryptedCodec({ secret: otherSecret }), text, "A")).rejects.toThrow(cannotDecrypt);
  });

  it("fails clearly when any bit of the IV or ciphertext is flipped", async () => {
    const [version, iv, sealed] = tokenOf(await codec.stringify(value, { key: "A" })).split(".") as [
      string,
      string,
      string,
    ];
    const flip = (segment: string, at: number) => {
      const raw = bytes(segment);
      raw[at] = (raw[at] as number) ^ 1;
      return raw.toString("base64url");
    };
    const sealedLength = bytes(sealed).length;
    for (const altered of [
      `${version}.${flip(iv, 0)}.${sealed}`,
      `${version}.${iv}.${flip(sealed, 0)}`,
      `${version}.${iv}.${flip(sealed, sealedLength - 1)}`, // the tag
    ]) {
      await expect(parse(codec, stored(altered), "A")).rejects.toThrow(cannotDecrypt);
    }
  });

  it("pins the stored format: a 12-byte IV, and ciphertext of the plaintext's length plus the 16-byte tag", async () => {
    for (const sample of [0, "", "x", value, { long: "é".repeat(5000) }]) {
      const [version, iv, sealed] = tokenOf(await codec.stringify(sample, { key: "A" })).split(".") as [
        string,
        string,
        string,
      ];
      expect(version).toBe("gps2");
      expect(bytes(iv).length).toBe(12);
      expect(bytes(sealed).length).toBe(Buffer.byteLength(JSON.stringify(sample), "utf8") + 16);
    }
  });

  // Generated once with this secret, key and value. If this stops decrypting, the
  // stored format changed: existing sessions would become unreadable. Make that a
  // new version on purpose, never an accident.
  const pinned = {
    secret: "a fixed secret for the pinned token test, 32+ chars",
    key: "bot1:42",
    value: { step: "pinned", n: 1 },
    text: '"gps2.mrox4XOL5EMuJHxE.n3axzLoKiF7HJVZgPmpXDE7Og6sxHyzJaNxbaW3VAh5aFP-_o9Po"',
  };

  it("still decrypts a token written by an earlier build, and only under its key", async () => {
    const fixed = encryptedCodec({ secret: pinned.secret });
    expect(await fixed.parse(pinned.text, { key: pinned.key })).toStrictEqual(pinned.value);
    await expect(parse(fixed, pinned.text, "bot2:42")).rejects.toThrow(cannotDecrypt);
  });

  it("follows its documented construction, checked with node:crypto instead of Web Crypto", () => {
    // HKDF-SHA-256(secret, salt "grammy-postgres-storage", info "session values v2") → AES-256-GCM,
    // AAD "grammy-postgres-storage:v2:" + stored key, token "gps2.<iv>.<ciphertext‖tag>".
    const key = Buffer.from(hkdfSync("sha256", pinned.secret, "grammy-postgres-storage", "session values v2", 32));
    const [, iv, sealed] = tokenOf(pinned.text).split(".") as [string, string, string];
    const raw = bytes(sealed);
    const decipher = createDecipheriv("aes-256-gcm", key, bytes(iv));
    decipher.setAAD(Buffer.from(`grammy-postgres-storage:v2:${pinned.key}`, "utf8"));
    decipher.setAuthTag(raw.subarray(raw.length - 16));
    const plaintext = Buffer.concat([decipher.update(raw.subarray(0, raw.length - 16)), decipher.final()]).toString(
      "utf8",
    );
    expect(JSON.parse(plaintext)).toStrictEqual(pinned.value);
  });

  describe("parses tokens strictly", () => {
    // "x" is 3 bytes of JSON: 19 bytes of ciphertext, so its last base64url character carries 4 unused bits.
    const good = async () => tokenOf(await codec.stringify("x", { key: "A" })).split(".") as [string, string, string];

    it("accepts the token it wrote", async () => {
      const [version, iv, sealed] = await good();
      expect(bytes(sealed).length % 3).toBe(1);
      expect(await codec.parse(stored(`${version}.${iv}.${sealed}`), { key: "A" })).toBe("x");
    });

    it("refuses an extra segment, a missing one and empty ones", async () => {
      const [version, iv, sealed] = await good();
      for (const token of [
        `${version}.${iv}.${sealed}.junk`,
        `${version}.${iv}.${sealed}.`,
        `${version}.${iv}`,
        version,
        "",
        `${version}..${sealed}`,
        `${version}.${iv}.`,
      ]) {
        await expect(parse(codec, stored(token), "A")).rejects.toThrow(notAToken);
      }
    });

    it("refuses padding, whitespace and characters outside base64url", async () => {
      const [version, iv, sealed] = await good();
      for (const token of [
        `${version}.${iv}.${sealed}==`,
        `${version}.${iv}.${sealed}=`,
        `${version}.${iv}.${sealed.slice(0, 8)} ${sealed.slice(8)}`,
        `${version}.${iv}.${sealed}\n`,
        ` ${version}.${iv}.${sealed}`,
        `${version}.${iv.slice(0, 8)}\t${iv.slice(8)}.${sealed}`,
        `${version}.${iv}.${sealed.replace(/[-_]/g, "+")}+/`,
        `${version}.${iv}.${sealed}%`,
      ]) {
        await expect(parse(codec, stored(token), "A")).rejects.toThrow(notAToken);
      }
    });

    it("refuses a last character with unused bits set, which lenient decoders read as the same bytes", async () => {
      const [version, iv, sealed] = await good();
      const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
      const last = alphabet.indexOf(sealed.at(-1) as string);
      const bent = sealed.slice(0, -1) + (alphabet[last | 1] as string);
      expect(bent).not.toBe(sealed);
      expect(bytes(bent)).toStrictEqual(bytes(sealed)); // so only strictness can tell them apart
      await expect(parse(codec, stored(`${version}.${iv}.${bent}`), "A")).rejects.toThrow(notAToken);
    });

    it("refuses a short or long IV and a ciphertext shorter than the tag", async () => {
      const [version, iv, sealed] = await good();
      const shortIv = bytes(iv).subarray(0, 11).toString("base64url");
      const longIv = Buffer.concat([bytes(iv), Buffer.from([0, 0, 0])]).toString("base64url");
      const shortSealed = bytes(sealed).subarray(0, 15).toString("base64url");
      await expect(parse(codec, stored(`${version}.${shortIv}.${sealed}`), "A")).rejects.toThrow(
        /IV is 11 bytes, not 12/,
      );
      await expect(parse(codec, stored(`${version}.${longIv}.${sealed}`), "A")).rejects.toThrow(
        /IV is 15 bytes, not 12/,
      );
      await expect(parse(codec, stored(`${version}.${iv}.${shortSealed}`), "A")).rejects.toThrow(
        /ciphertext is 15 bytes, shorter than the 16-byte tag/,
      );
      await expect(parse(codec, stored(`${version}.${iv}.${shortSealed}`), "A")).rejects.toThrow(notAToken);
    });

    it("refuses another version, and says a gps1 token is the unbound pre-release format", async () => {
      const [, iv, sealed] = await good();
      for (const version of ["gps3", "GPS2", "gps2 ", "", "v2"]) {
        await expect(parse(codec, stored(`${version}.${iv}.${sealed}`), "A")).rejects.toThrow(notAToken);
      }
      await expect(parse(codec, stored(`gps1.${iv}.${sealed}`), "A")).rejects.toThrow(
        /"gps1" token, the unbound pre-release format/,
      );
      await expect(parse(codec, stored(`gps1.${iv}.${sealed}.extra`), "A")).rejects.toThrow(
        /unbound pre-release format/,
      );
    });

    it("refuses JSON that is not a string, and text that is not JSON, without quoting it", async () => {
      for (const text of ['{"step":"plain secret"}', "[1]", "42", "null", "true"]) {
        const error = (await parse(codec, text, "A").catch((e: unknown) => e)) as Error;
        expect(error.message).toMatch(notAToken);
        expect(error.message).toMatch(/not a string \(was it stored before encryption was turned on\?\)/);
        expect(error.message).not.toContain("plain secret");
      }
      for (const text of ["gps2.abc.def", "", "'gps2'", '"unterminated']) {
        await expect(parse(codec, text, "A")).rejects.toThrow(/not an encryptedCodec token .*: it is not JSON/);
      }
    });
  });

  describe("rotation", () => {
    it("reads the old secret's tokens after rotation, and writes with the new secret only", async () => {
      const before = encryptedCodec({ secret: otherSecret });
      const rotated = encryptedCodec({ secret: [secret, otherSecret] });
      const old = await before.stringify(value, { key: "A" });
      expect(await rotated.parse(old, { key: "A" })).toStrictEqual(value);
      const fresh = await rotated.stringify(value, { key: "A" });
      await expect(parse(before, fresh, "A")).rejects.toThrow(cannotDecrypt);
      expect(await encryptedCodec({ secret }).parse(fresh, { key: "A" })).toStrictEqual(value);
    });

    it("keeps the key binding under every secret", async () => {
      const rotated = encryptedCodec({ secret: [secret, otherSecret] });
      const old = await encryptedCodec({ secret: otherSecret }).stringify(value, { key: "A" });
      await expect(parse(rotated, old, "B")).rejects.toThrow(cannotDecrypt);
    });
  });

  it("refuses to work without a { key } context, saying why", async () => {
    const text = await codec.stringify(value, { key: "A" });
    const why =
      /encryptedCodec binds each value to its stored key, so it must be called with a context \{ key \}.*as PostgresStorage does/;
    for (const context of [undefined, null, {}, { key: 42 }, "A", { grammyKey: "A" }]) {
      await expect(Promise.resolve().then(() => codec.stringify(value, context))).rejects.toThrow(why);
      await expect(Promise.resolve().then(() => codec.parse(text, context))).rejects.toThrow(why);
    }
  });

  it("accepts a context whose key is a getter, as the storage's is", async () => {
    class Context {
      get key() {
        return "A";
      }
    }
    const text = await codec.stringify(value, new Context());
    expect(await codec.parse(text, { key: "A" })).toStrictEqual(value);
  });

  it("passes the context to the inner codec", async () => {
    const seen: unknown[] = [];
    const inner: Codec = {
      stringify: (v, context) => (seen.push(context), JSON.stringify(v)),
      parse: (text, context) => (seen.push(context), JSON.parse(text)),
    };
    const wrapping = encryptedCodec({ secret, codec: inner });
    const context = { key: "A" };
    await wrapping.parse(await wrapping.stringify(1, context), context);
    expect(seen).toStrictEqual([context, context]);
  });

  it("refuses NaN through the default inner codec, and does not blame the secret for what the inner codec cannot parse", async () => {
    await expect(codec.stringify({ n: Number.NaN }, { key: "A" })).rejects.toThrow(/NaN/);
    const picky = encryptedCodec({
      secret,
      codec: {
        stringify: JSON.stringify,
        parse: () => {
          throw new Error("inner codec refused");
        },
      },
    });
    await expect(parse(picky, await picky.stringify({ a: 1 }, { key: "A" }), "A")).rejects.toThrow(
      /inner codec refused/,
    );
    const broken = encryptedCodec({
      secret,
      codec: { stringify: () => undefined as unknown as string, parse: JSON.parse },
    });
    await expect(broken.stringify({ a: 1 }, { key: "A" })).rejects.toThrow(
      /inner codec of encryptedCodec returned undefined, not a string/,
    );
  });

  it("refuses a short secret", () => {
    expect(() => encryptedCodec({ secret: "hunter2" })).toThrow(/at least 32 characters/);
    expect(() => encryptedCodec({ secret: [] })).toThrow(/at least 32 characters/);
    expect(() => encryptedCodec({ secret: [secret, "hunter2"] })).toThrow(/at least 32 characters/);
  });
});

describe("encryptedCodec in a PostgresStorage", () => {
  const db = useFixture();
  const rowOf = async (name: string, key: string) =>
    (await db.admin(`SELECT value::text AS text, updated_at, expires_at FROM "${name}" WHERE key = $1`, [key]))[0];

  it("round-trips through the database, and the stored text holds no plaintext", async () => {
    const name = db.table("enc_roundtrip");
    const store = new PostgresStorage({ client: db.pool, tableName: name, codec: encryptedCodec({ secret }) });
    await store.write("k", value);
    expect(await store.read("k")).toStrictEqual(value);
    const [row] = await db.admin(`SELECT value::text AS text, json_typeof(value) AS type FROM "${name}"`);
    expect(row?.type).toBe("string");
    const text = String(row?.text);
    for (const plain of ["Ada", "Lovelace", "4111", "confirm", "step"]) expect(text).not.toContain(plain);
    expect(text).toMatch(/^"gps2\.[\w-]{16}\.[\w-]+"$/);
  });

  it("fails clearly with the wrong secret", async () => {
    const name = db.table("enc_wrongkey");
    await new PostgresStorage({ client: db.pool, tableName: name, codec: encryptedCodec({ secret }) }).write(
      "k",
      value,
    );
    const wrong = new PostgresStorage({
      client: db.pool,
      tableName: name,
      codec: encryptedCodec({ secret: otherSecret }),
    });
    const error = await wrong.read("k").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PostgresStorageError);
    expect((error as Error).message).toMatch(/cannot be decoded/);
    expect((error as Error).message).toMatch(cannotDecrypt);
  });

  it("fails clearly when the stored value was altered, or stored before encryption", async () => {
    const name = db.table("enc_tamper");
    const store = new PostgresStorage({ client: db.pool, tableName: name, codec: encryptedCodec({ secret }) });
    await store.write("k", value);
    const [row] = await db.admin(`SELECT value #>> '{}' AS token FROM "${name}"`);
    const token = String(row?.token);
    const flipped = token.slice(0, -3) + (token.at(-3) === "A" ? "B" : "A") + token.slice(-2);
    await db.admin(`UPDATE "${name}" SET value = to_json($1::text)`, [flipped]);
    await expect(store.read("k")).rejects.toThrow(cannotDecrypt);
    await db.admin(`UPDATE "${name}" SET value = '{"step": "plain"}'`);
    await expect(store.read("k")).rejects.toThrow(notAToken);
  });

  it("refuses a value copied onto another key's row, and leaves that row as it was", async () => {
    const name = db.table("enc_moved");
    const store = new PostgresStorage({ client: db.pool, tableName: name, codec: encryptedCodec({ secret }) });
    await store.write("A", { owner: "A", balance: 100 });
    await store.write("B", { owner: "B", balance: 0 });
    await db.admin(`UPDATE "${name}" SET value = (SELECT value FROM "${name}" WHERE key = 'A') WHERE key = 'B'`);
    const before = await rowOf(name, "B");
    expect(before?.text).toBe((await rowOf(name, "A"))?.text);
    const error = await store.read("B").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PostgresStorageError);
    expect((error as Error).message).toMatch(/cannot be decoded/);
    expect((error as Error).message).toMatch(cannotDecrypt);
    expect(await rowOf(name, "B")).toStrictEqual(before);
    expect(await store.read("A")).toStrictEqual({ owner: "A", balance: 100 });
  });

  it("binds to the stored key: bot1's value copied onto bot2's row of the same grammY key fails", async () => {
    const name = db.table("enc_prefixes");
    const codec = encryptedCodec({ secret }); // one secret for both bots: only the key tells them apart
    const bot1 = new PostgresStorage({ client: db.pool, tableName: name, codec, keyBuilder: prefixKeys("bot1") });
    const bot2 = new PostgresStorage({ client: db.pool, tableName: name, codec, keyBuilder: prefixKeys("bot2") });
    await bot1.write("42", { bot: 1 });
    await bot2.write("42", { bot: 2 });
    await db.admin(
      `UPDATE "${name}" SET value = (SELECT value FROM "${name}" WHERE key = 'bot1:42') WHERE key = 'bot2:42'`,
    );
    const before = await rowOf(name, "bot2:42");
    const error = await bot2.read("42").catch((e: unknown) => e);
    expect(error).toBeInstanceOf(PostgresStorageError);
    expect((error as Error).message).toMatch(/cannot be decoded/);
    expect((error as Error).message).toMatch(cannotDecrypt);
    expect(await rowOf(name, "bot2:42")).toStrictEqual(before);
    expect(await bot1.read("42")).toStrictEqual({ bot: 1 });
  });

  it("readAllEntries decrypts each row under its own stored key", async () => {
    const name = db.table("enc_all");
    const store = new PostgresStorage({
      client: db.pool,
      tableName: name,
      codec: encryptedCodec({ secret }),
      keyBuilder: prefixKeys("bot1"),
    });
    await store.write("1", { n: 1 });
    await store.write("2", { n: 2 });
    const entries: [string, unknown][] = [];
    for await (const entry of store.readAllEntries()) entries.push(entry);
    expect(entries.sort(([a], [b]) => a.localeCompare(b))).toStrictEqual([
      ["1", { n: 1 }],
      ["2", { n: 2 }],
    ]);
  });

  it("rotates secrets: writes with the first, reads with any", async () => {
    const name = db.table("enc_rotate");
    await new PostgresStorage({
      client: db.pool,
      tableName: name,
      codec: encryptedCodec({ secret: otherSecret }),
    }).write("old", value);
    const rotated = new PostgresStorage({
      client: db.pool,
      tableName: name,
      codec: encryptedCodec({ secret: [secret, otherSecret] }),
    });
    expect(await rotated.read("old")).toStrictEqual(value);
    await rotated.write("new", value);
    const current = new PostgresStorage({ client: db.pool, tableName: name, codec: encryptedCodec({ secret }) });
    expect(await current.read("new")).toStrictEqual(value);
    await expect(
      new PostgresStorage({ client: db.pool, tableName: name, codec: encryptedCodec({ secret: otherSecret }) }).read(
        "new",
      ),
    ).rejects.toThrow(cannotDecrypt);
  });

  it("rotation: a session read with the old secret and written back unchanged is stored under the new one; one another isolate changed meanwhile keeps that change", async () => {
    const name = db.table("enc_rotate_rows");
    const old = new PostgresStorage({
      client: db.pool,
      tableName: name,
      codec: encryptedCodec({ secret: otherSecret }),
    });
    await old.write("read-only", value);
    await old.write("changed", value);
    const rotated = () =>
      new PostgresStorage<typeof value & { paid?: boolean }>({
        client: db.pool,
        tableName: name,
        codec: encryptedCodec({ secret: [secret, otherSecret] }),
      });
    const job = rotated();
    const webhook = rotated(); // another isolate, which writes with the new secret too
    const before = await rowOf(name, "read-only");
    // The documented loop, with another isolate's update() between the job's read and its write of one key.
    for await (const key of job.readAllKeys()) {
      const session = await job.read(key);
      if (key === "changed") await webhook.update(key, { paid: true });
      if (session !== undefined) await job.write(key, session);
    }
    const current = new PostgresStorage({ client: db.pool, tableName: name, codec: encryptedCodec({ secret }) });
    expect(await current.read("read-only")).toStrictEqual(value);
    expect(await current.read("changed")).toStrictEqual({ ...value, paid: true });
    expect((await rowOf(name, "read-only"))?.text).not.toBe(before?.text);
    // A row already under the new secret is not written again.
    const again = await rowOf(name, "read-only");
    const session = await job.read("read-only");
    await job.write("read-only", session as typeof value);
    expect(await rowOf(name, "read-only")).toStrictEqual(again);
  });

  it("encrypts what an inner codec produced", async () => {
    const store = new PostgresStorage({
      client: db.pool,
      tableName: db.table("enc_inner"),
      codec: encryptedCodec({ secret, codec: jsonWithDates }),
    });
    const dated = { at: new Date("2025-01-01T00:00:00.000Z") };
    await store.write("k", dated);
    expect(await store.read("k")).toStrictEqual(dated);
  });
});
