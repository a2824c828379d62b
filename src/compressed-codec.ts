import { strictJson, type Codec, type LayeredCodec } from "./codec.ts";
import { fromCanonicalBase64Url, toBase64Url } from "./base64url.ts";
import { StorageOptionError } from "./errors.ts";

/** Options of {@link compressedCodec}. */
export interface CompressedCodecOptions {
  /**
   * Encodes values before compression, e.g. `superjson`. Defaults to the
   * storage's default: JSON that refuses every value it would not give back
   * as written. It receives the same context as this codec.
   */
  codec?: Codec | undefined;
  /**
   * Inner texts shorter than this many characters (UTF-16 code units, as
   * `text.length` counts them) are stored as they are, uncompressed. Default
   * 1024. Whatever it is, a text is only stored compressed when its token is
   * shorter than the text itself. Changing it never makes stored values
   * unreadable: every token says by itself that it is one.
   */
  threshold?: number | undefined;
}

/** The prefix every token of this codec starts with, whatever its version. */
const RESERVED = "gpsz";
const VERSION = "gpsz1";
const DEFAULT_THRESHOLD = 1024;
// The zlib format (RFC 1950): deflate with a 2-byte header and an Adler-32 of the content.
const FORMAT = "deflate";
const ADLER_BYTES = 4;
// A 2-byte header, the shortest deflate block (2 bytes, for no text), the Adler-32.
const MIN_STREAM_BYTES = 8;
const encoder = new TextEncoder();
// fatal: bytes that are not UTF-8 are refused, not turned into U+FFFD.
const decoder = new TextDecoder("utf-8", { fatal: true, ignoreBOM: true });

/**
 * A codec that compresses the text of another codec (the default: the
 * storage's strict JSON) with deflate, through the runtime's own
 * `CompressionStream` and `DecompressionStream` (Workers, Vercel, Node 20+,
 * Deno and Bun alike; no dependency). Made for state that grows, such as the
 * replay log of `@grammyjs/conversations`.
 *
 * What is stored is still JSON, as the `json` column requires:
 *
 * - a text shorter than `threshold` (1024 characters by default), or one that
 *   compression would not make shorter, is stored as it is, so small sessions
 *   stay readable in SQL;
 * - otherwise a JSON string `"gpsz1.<data>"`, `<data>` being the zlib
 *   (RFC 1950) stream of the UTF-8 text, in base64url without padding.
 *
 * Every JSON string whose content starts with `gpsz` is read as a token, so an
 * inner text that is itself such a string is always stored compressed, however
 * short: an uncompressed value is never mistaken for a token. A token that is
 * not base64url, does not inflate, fails its checksum, has bytes after its
 * stream, or inflates to bytes that are not UTF-8 is refused with an error
 * that says which; so is a `gpsz` token of another version.
 *
 * With encryption, compress first, then encrypt (ciphertext does not compress):
 * `encryptedCodec({ secret, codec: compressedCodec() })`. The length of an
 * encrypted value then follows the compressed length, which depends on the
 * content; if that matters, leave compression out.
 *
 * `update()` cannot merge compressed values in the database: it merges them in
 * JavaScript, with a compare-and-set, schema or not.
 *
 * @throws StorageOptionError when `threshold` is not a non-negative number, or `codec` is no codec
 */
export function compressedCodec(options: CompressedCodecOptions = {}): LayeredCodec {
  const threshold = options?.threshold ?? DEFAULT_THRESHOLD;
  if (typeof threshold !== "number" || !(threshold >= 0)) {
    throw new StorageOptionError(
      "threshold",
      "compressedCodec needs a threshold of 0 or more characters (texts shorter than it are stored uncompressed)",
    );
  }
  const inner = options?.codec ?? strictJson;
  if (typeof inner?.stringify !== "function" || typeof inner.parse !== "function") {
    throw new StorageOptionError("codec", "compressedCodec needs a codec with stringify(value) and parse(text)");
  }

  const wrap = async (text: string): Promise<string> => {
    if (typeof text !== "string") {
      throw new TypeError(
        `the inner codec of compressedCodec returned ${text === null ? "null" : typeof text}, not a string`,
      );
    }
    const reserved = looksLikeToken(text);
    if (text.length < threshold && !reserved) return text;
    const token = JSON.stringify(
      `${VERSION}.${toBase64Url(await transform(new CompressionStream(FORMAT), encoder.encode(text)))}`,
    );
    return token.length < text.length || reserved ? token : text;
  };

  const unwrap = async (text: string): Promise<string> => {
    const token = tokenIn(text);
    if (token === undefined) return text;
    const notOurs = (why: string) =>
      new Error(`the stored value is not a compressedCodec token "${VERSION}.<data>": ${why}`);
    const dot = token.indexOf(".");
    const version = dot === -1 ? token : token.slice(0, dot);
    if (version !== VERSION) {
      throw notOurs(`its version is "${version.slice(0, 16)}", which this version of the library does not read`);
    }
    const data = fromCanonicalBase64Url(token.slice(dot + 1));
    if (data === undefined) throw notOurs("its data is not canonical base64url");
    if (data.length < MIN_STREAM_BYTES) throw notOurs(`its data is ${data.length} bytes, too short for a zlib stream`);
    let bytes: Uint8Array;
    try {
      bytes = await transform(new DecompressionStream(FORMAT), data);
    } catch (error) {
      throw notOurs(`its data does not inflate (${error instanceof Error ? error.message : String(error)})`);
    }
    // The last four bytes must be the Adler-32 of what the stream inflates to, which holds only
    // when the stream is whole and ends the data: Deno's DecompressionStream inflates a stream
    // that was cut short, and Node's ignores bytes after its end, without an error.
    if (adler32(bytes) !== readUint32(data, data.length - ADLER_BYTES)) {
      throw notOurs("it is not one whole zlib stream (cut short, or followed by other bytes)");
    }
    let inflated: string;
    try {
      inflated = decoder.decode(bytes);
    } catch {
      throw notOurs("it inflates to bytes that are not UTF-8 text");
    }
    if (inflated.trim() === "") throw notOurs("it inflates to no text");
    return inflated;
  };

  return {
    inner,
    wrap,
    unwrap,
    async stringify(value: unknown, context?: unknown) {
      return wrap(await inner.stringify(value, context));
    },
    async parse(text: string, context?: unknown) {
      return inner.parse(await unwrap(text), context);
    },
  };
}

const JSON_WHITESPACE = /^[ \t\n\r]*"/;

/** The content of a JSON string text that starts with the reserved prefix, or `undefined` for any other text. */
function tokenIn(text: string): string | undefined {
  // Only a string can be a token; an object or array (most sessions) is not even parsed.
  if (!JSON_WHITESPACE.test(text)) return undefined;
  let content: unknown;
  try {
    content = JSON.parse(text);
  } catch {
    return undefined;
  }
  return typeof content === "string" && content.startsWith(RESERVED) ? content : undefined;
}

/** Whether `unwrap` would read this inner text as a token (and so it must be stored as one). */
const looksLikeToken = (text: string) => tokenIn(text) !== undefined;

/** Runs bytes through a compression or decompression stream. */
async function transform(stream: CompressionStream | DecompressionStream, input: Uint8Array): Promise<Uint8Array> {
  const writer = stream.writable.getWriter();
  // Failures surface on the readable side; these two would only repeat them, unhandled.
  writer.write(input as Uint8Array<ArrayBuffer>).catch(() => {});
  writer.close().catch(() => {});
  const reader = stream.readable.getReader();
  const chunks: Uint8Array[] = [];
  let length = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    length += value.length;
  }
  if (chunks.length === 1) return chunks[0] as Uint8Array;
  const output = new Uint8Array(length);
  let offset = 0;
  for (const chunk of chunks) {
    output.set(chunk, offset);
    offset += chunk.length;
  }
  return output;
}

/** The Adler-32 checksum of RFC 1950. */
function adler32(bytes: Uint8Array): number {
  let a = 1;
  let b = 0;
  // zlib's NMAX: the sums are reduced every 5552 bytes, as zlib does, so they stay small integers.
  for (let start = 0; start < bytes.length; start += 5552) {
    const end = Math.min(start + 5552, bytes.length);
    for (let i = start; i < end; i += 1) {
      a += bytes[i] as number;
      b += a;
    }
    a %= 65521;
    b %= 65521;
  }
  return ((b << 16) | a) >>> 0;
}

const readUint32 = (bytes: Uint8Array, at: number) =>
  (((bytes[at] as number) << 24) |
    ((bytes[at + 1] as number) << 16) |
    ((bytes[at + 2] as number) << 8) |
    (bytes[at + 3] as number)) >>>
  0;
