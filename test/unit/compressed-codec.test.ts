import * as devalue from "devalue";
import { Buffer } from "node:buffer";
import { deflateRawSync, deflateSync, gzipSync } from "node:zlib";
import superjson from "superjson";
import { describe, expect, it } from "vitest";
import type { LayeredCodec } from "../../src/codec.ts";
import { compressedCodec } from "../../src/compressed-codec.ts";
import { encryptedCodec } from "../../src/encrypted-codec.ts";
import { StorageOptionError } from "../../src/errors.ts";
import { jsonWithDates } from "../../src/dates-codec.ts";
import { strictJson, type Codec } from "../../src/codec.ts";

const secret = "correct horse battery staple, 32+ chars of secret";
const notAToken = /the stored value is not a compressedCodec token "gpsz1\.<data>"/;

/** A conversation-like state: a replay log of the same shape over and over, which compresses well. */
const replayLog = (entries: number) => ({
  version: [0, "c1"],
  state: {
    feedback: [
      {
        args: [{ update_id: 1, message: { message_id: 1, text: "/feedback", chat: { id: 42, type: "private" } } }],
        interrupts: Array.from({ length: entries }, (_, i) => i),
        replay: {
          send: Array.from({ length: entries }, (_, i) => ({ payload: { chat_id: 42, text: `reply ${i}` } })),
          receive: Array.from({ length: entries }, (_, i) => ({
            update_id: 100 + i,
            message: { text: `answer ${i}` },
          })),
        },
      },
    ],
  },
});

/** The token inside a stored text, and back. */
const tokenOf = (text: string) => JSON.parse(text) as string;
const stored = (token: string) => JSON.stringify(token);
const tokenWith = (bytes: Uint8Array) => stored(`gpsz1.${Buffer.from(bytes).toString("base64url")}`);
/** Unwraps, as a promise whatever it throws. */
const unwrap = (codec: LayeredCodec, text: string) => Promise.resolve().then(() => codec.unwrap(text));

describe("compressedCodec", () => {
  const codec = compressedCodec();
  const big = replayLog(40);
  const bigText = JSON.stringify(big);

  it("round-trips, and stores a large value as a shorter JSON string token", async () => {
    const text = await codec.stringify(big, { key: "A" });
    expect(text).toMatch(/^"gpsz1\.[\w-]+"$/);
    expect(typeof JSON.parse(text)).toBe("string"); // valid JSON for the json column
    expect(text.length).toBeLessThan(bigText.length / 4);
    expect(await codec.parse(text, { key: "A" })).toStrictEqual(big);
  });

  it("exposes its layering: inner is the strict JSON codec, wrap/unwrap move between inner and stored text", async () => {
    expect(codec.inner).toBe(strictJson);
    const wrapped = await codec.wrap(bigText);
    expect(wrapped).toBe(await codec.stringify(big));
    expect(await codec.unwrap(wrapped)).toBe(bigText);
    // The storage compares on the innermost text: the same value gives the same inner text, whatever was stored.
    expect(await codec.unwrap(await codec.stringify(big))).toBe(await strictJson.stringify(big));
  });

  it("is deterministic: the same value is always stored as the same text", async () => {
    expect(await codec.stringify(big)).toBe(await codec.stringify(structuredClone(big)));
  });

  it("stores texts shorter than the threshold as they are", async () => {
    for (const small of [{ step: "idle" }, [1, 2, 3], "plain", 0, null, true, { long: "x".repeat(1000) }]) {
      const text = await codec.stringify(small);
      expect(text).toBe(JSON.stringify(small));
      expect(await codec.parse(text)).toStrictEqual(small);
    }
  });

  it("compresses from the threshold on, and only when the token is shorter", async () => {
    const at = (threshold: number) => compressedCodec({ threshold });
    const text = JSON.stringify({ pad: "ab".repeat(100) }); // 211 characters that compress well
    expect(await at(text.length + 1).wrap(text)).toBe(text);
    expect(await at(text.length).wrap(text)).toMatch(/^"gpsz1\./);
    expect(await at(0).wrap(text)).toMatch(/^"gpsz1\./);
    // Incompressible: random base64 grows under deflate plus base64url, so it stays as it is.
    const random = JSON.stringify(Buffer.from(crypto.getRandomValues(new Uint8Array(3000))).toString("base64"));
    expect(await at(0).wrap(random)).toBe(random);
    expect(await at(0).wrap("{}")).toBe("{}");
  });

  it("never misreads an uncompressed value that looks like a token: such strings are always stored compressed", async () => {
    for (const lookalike of ["gpsz1.eJxTSi8orjLUq1ACAA73AuA", "gpsz1.", "gpsz", "gpsz2.abc", "gpszz"]) {
      const text = await codec.stringify(lookalike);
      expect(text).not.toBe(JSON.stringify(lookalike));
      expect(text).toMatch(/^"gpsz1\.[\w-]+"$/);
      expect(await codec.parse(text)).toBe(lookalike);
      // Escaped or spaced, the inner text still reads as a token, so it is still compressed.
      for (const spelling of [` ${JSON.stringify(lookalike)}`, `"\\u0067${lookalike.slice(1)}"`]) {
        const wrapped = await codec.wrap(spelling);
        expect(wrapped).toMatch(/^"gpsz1\./);
        expect(await codec.unwrap(wrapped)).toBe(spelling);
      }
    }
    // Strings that only contain the prefix, or objects holding it, are ordinary values.
    for (const ordinary of ["a gpsz1.x", "GPSZ1.x", { token: "gpsz1.x" }, ["gpsz1.x"]]) {
      expect(await codec.stringify(ordinary)).toBe(JSON.stringify(ordinary));
      expect(await codec.parse(JSON.stringify(ordinary))).toStrictEqual(ordinary);
    }
  });

  it("wraps any codec: superjson, devalue, jsonWithDates", async () => {
    const dated = { at: new Date("2025-01-01T00:00:00.000Z"), tags: new Set(["a"]), big: 10n, log: big };
    for (const inner of [superjson, devalue] as Codec[]) {
      const layered = compressedCodec({ codec: inner });
      expect(layered.inner).toBe(inner);
      const text = await layered.stringify(dated);
      expect(text).toMatch(/^"gpsz1\./);
      expect(await layered.parse(text)).toStrictEqual(dated);
      expect(await layered.unwrap(text)).toBe(await inner.stringify(dated));
    }
    const withDates = compressedCodec({ codec: jsonWithDates, threshold: 0 });
    const value = { at: new Date(0), log: big };
    expect(await withDates.parse(await withDates.stringify(value))).toStrictEqual(value);
  });

  it("passes the context on to the inner codec", async () => {
    const seen: unknown[] = [];
    const spy: Codec = {
      stringify: (value, context) => (seen.push(context), JSON.stringify(value)),
      parse: (text, context) => (seen.push(context), JSON.parse(text)),
    };
    const layered = compressedCodec({ codec: spy });
    const context = { key: "k" };
    await layered.parse(await layered.stringify(big, context), context);
    expect(seen).toStrictEqual([context, context]);
  });

  it("refuses what its inner codec refuses, and an inner codec that returns no string", async () => {
    await expect(codec.stringify({ at: new Date() })).rejects.toThrow(/value\.at is a Date/);
    const broken = compressedCodec({ codec: { stringify: () => undefined as unknown as string, parse: JSON.parse } });
    await expect(broken.stringify(1)).rejects.toThrow(
      /inner codec of compressedCodec returned undefined, not a string/,
    );
  });

  it("round-trips text with every kind of character", async () => {
    const value = { text: "é🔐\u0000\u2028\ud7ff".repeat(400), lone: "\ufeffBOM first" };
    const layered = compressedCodec({ codec: JSON, threshold: 0 });
    expect(await layered.parse(await layered.stringify(value))).toStrictEqual(value);
    expect(await layered.unwrap(await layered.wrap("\ufeff{}"))).toBe("\ufeff{}");
  });

  describe("refuses tokens it did not write, saying why", () => {
    const text = bigText;
    const zlib = deflateSync(Buffer.from(text));

    it("another version, or a bare prefix", async () => {
      await expect(unwrap(codec, stored("gpsz2.abc"))).rejects.toThrow(/its version is "gpsz2"/);
      await expect(unwrap(codec, stored("gpsz"))).rejects.toThrow(/its version is "gpsz"/);
      await expect(unwrap(codec, stored("gpszfoo.x"))).rejects.toThrow(notAToken);
    });

    it("data that is not canonical base64url", async () => {
      const good = tokenOf(await codec.stringify(big));
      for (const bad of [`${good}=`, `${good}+`, `${good.slice(0, 6)} ${good.slice(6)}`, "gpsz1.a", "gpsz1.AB"]) {
        await expect(unwrap(codec, stored(bad))).rejects.toThrow(/not canonical base64url/);
      }
    });

    // Runtimes differ in what their DecompressionStream lets through (Deno inflates a stream
    // cut short, or part of a damaged one; Node ignores bytes after the end); the checksum at
    // the end catches what they let through.
    const notWhole = /(it is not one whole zlib stream \(cut short, or followed by other bytes\)|does not inflate)/;

    it("data that does not inflate: not zlib, or a flipped bit", async () => {
      const flipped = Buffer.from(zlib);
      flipped[flipped.length - 6] = (flipped[flipped.length - 6] as number) ^ 0x10;
      for (const bad of [
        Buffer.from("not compressed at all"),
        flipped,
        deflateRawSync(Buffer.from(text)), // another format
        gzipSync(Buffer.from(text)),
      ]) {
        await expect(unwrap(codec, tokenWith(bad))).rejects.toThrow(notWhole);
      }
    });

    it("data too short for a zlib stream", async () => {
      for (const bytes of [0, 1, 7]) {
        await expect(unwrap(codec, tokenWith(zlib.subarray(0, bytes)))).rejects.toThrow(
          new RegExp(`its data is ${bytes} bytes, too short for a zlib stream`),
        );
      }
    });

    it("a stream cut short, a checksum flipped, or bytes after the end of the stream", async () => {
      const wrongSum = Buffer.from(zlib);
      wrongSum[wrongSum.length - 1] = (wrongSum[wrongSum.length - 1] as number) ^ 1;
      for (const bad of [zlib.subarray(0, -5), zlib.subarray(0, -1), wrongSum]) {
        await expect(unwrap(codec, tokenWith(bad))).rejects.toThrow(notWhole);
      }
      // Checked by the stream's last four bytes, its Adler-32 (junk that repeats them exactly would pass).
      for (const junk of [[0], [1, 2, 3, 4], [0x78, 0x9c]]) {
        await expect(unwrap(codec, tokenWith(Buffer.concat([zlib, Buffer.from(junk)])))).rejects.toThrow(notWhole);
      }
    });

    it("what inflates to bytes that are not UTF-8, or to no text", async () => {
      await expect(unwrap(codec, tokenWith(deflateSync(Buffer.from([0x7b, 0xff, 0xfe, 0x7d]))))).rejects.toThrow(
        /inflates to bytes that are not UTF-8 text/,
      );
      await expect(unwrap(codec, tokenWith(deflateSync(Buffer.from(" \n"))))).rejects.toThrow(/inflates to no text/);
      await expect(unwrap(codec, tokenWith(deflateSync(Buffer.from(""))))).rejects.toThrow(/inflates to no text/);
    });

    it("a token made by a zlib at another level is still read: it is the same format", async () => {
      for (const level of [1, 9]) {
        expect(await codec.unwrap(tokenWith(deflateSync(Buffer.from(text), { level })))).toBe(text);
      }
    });

    it("parse refuses as unwrap does, and never reaches the inner codec", async () => {
      let parsed = 0;
      const layered = compressedCodec({ codec: { stringify: JSON.stringify, parse: () => (parsed += 1) } });
      await expect(layered.parse(stored("gpsz1.AAAA"))).rejects.toThrow(notAToken);
      expect(parsed).toBe(0);
    });
  });

  it("checks its options", () => {
    for (const threshold of [-1, Number.NaN, "1024" as unknown as number]) {
      expect(() => compressedCodec({ threshold })).toThrow(StorageOptionError);
    }
    expect(() => compressedCodec({ codec: {} as Codec })).toThrow(/needs a codec with stringify/);
    expect(compressedCodec({ threshold: Number.POSITIVE_INFINITY })).toBeDefined();
    expect(compressedCodec(undefined).inner).toBe(strictJson);
  });
});

describe("compressedCodec with encryptedCodec", () => {
  const value = replayLog(40);
  const context = { key: "conversation:42" };
  /** The inner codec of encryptedCodec that leaves the decrypted text as it is: peels the encryption off. */
  const asText: Codec = { stringify: (text) => text as string, parse: (text) => text };

  it("compress, then encrypt: reads back through parse, and layer by layer through unwrap", async () => {
    const compressed = compressedCodec();
    const codec = encryptedCodec({ secret, codec: compressed });
    const text = await codec.stringify(value, context);
    expect(text).toMatch(/^"gps2\.[\w-]{16}\.[\w-]+"$/);
    // Encrypted compressed text: far shorter than encrypted plain text.
    const plainEncrypted = await encryptedCodec({ secret }).stringify(value, context);
    expect(text.length).toBeLessThan(plainEncrypted.length / 3);
    expect(await codec.parse(text, context)).toStrictEqual(value);
    // The other way of reading: decrypt to the compressed text, unwrap it to the innermost text, parse that.
    const decrypted = (await encryptedCodec({ secret, codec: asText }).parse(text, context)) as string;
    expect(decrypted).toMatch(/^"gpsz1\./);
    const innermost = await compressed.unwrap(decrypted, context);
    expect(innermost).toBe(JSON.stringify(value));
    expect(await compressed.inner.parse(innermost, context)).toStrictEqual(value);
  });

  it("encrypt, then compress: still reads back, stored as the encrypted token since ciphertext does not compress", async () => {
    const codec = compressedCodec({ codec: encryptedCodec({ secret }), threshold: 0 });
    const text = await codec.stringify(value, context);
    expect(text).toMatch(/^"gps2\./);
    expect(await codec.unwrap(text, context)).toBe(text);
    expect(await codec.parse(text, context)).toStrictEqual(value);
  });

  it("a compressed value read by encryptedCodec alone is refused as no encrypted token", async () => {
    const text = await compressedCodec().stringify(value);
    await expect(Promise.resolve().then(() => encryptedCodec({ secret }).parse(text, context))).rejects.toThrow(
      /not an encryptedCodec token/,
    );
  });
});
