import { KeyContext, strictJson, type Codec, type CodecContext, type LayeredCodec } from "./codec.ts";
import { fromCanonicalBase64Url, toBase64Url } from "./base64url.ts";
import { StorageOptionError } from "./errors.ts";

/** Options of {@link encryptedCodec}. */
export interface EncryptedCodecOptions {
  /**
   * The secret the encryption key is derived from: at least 32 characters of
   * randomness (e.g. `openssl rand -base64 32`), kept in your platform's
   * secrets. Anyone holding it can read and forge every value, so it must not
   * live in the database it protects.
   *
   * To rotate, pass `[newSecret, oldSecret]`: new values are written with the
   * first secret, and each stored value is read with whichever secret it was
   * written with (still bound to its key). A session read with the old secret
   * and written back unchanged is stored again under the new one, if the row
   * still holds what was read; before dropping the old secret, do that for every
   * row (`for await (const key of storage.readAllKeys()) { const value = await
   * storage.read(key); if (value !== undefined) await storage.write(key, value); }`),
   * or wait until they have all expired.
   */
  secret: string | readonly string[];
  /**
   * Encodes values before encryption, e.g. `superjson`. Defaults to the
   * storage's default: JSON that refuses every value it would not give back
   * as written. It receives the same context as this codec.
   */
  codec?: Codec | undefined;
}

const VERSION = "gps2";
// The unbound format of the pre-release; recognised only to explain why it is refused.
const UNBOUND_VERSION = "gps1";
// A fixed label in front of the key, so that this AAD can never equal one that
// another use of the same secret (or a later format) authenticates.
const AAD_LABEL = "grammy-postgres-storage:v2:";
const MIN_SECRET_LENGTH = 32;
const IV_BYTES = 12;
const TAG_BYTES = 16;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A codec that encrypts every value with AES-256-GCM through Web Crypto
 * (Workers, Vercel, Node 20+, Deno, Bun alike), with the key derived from the
 * secret by HKDF-SHA-256.
 *
 * What is stored is a JSON string `"gps2.<iv>.<ciphertext>"` (base64url without
 * padding; a 12-byte random IV, then the encrypted output of the inner codec
 * followed by the 16-byte GCM tag), so the value column stays valid JSON and
 * holds no plaintext. The length of the value, the key and the row's
 * timestamps stay visible.
 *
 * Each value is bound to the key it is stored under (the stored key, after the
 * key builder's prefix): the key is authenticated with the ciphertext, so a
 * value copied onto another key's row, or altered in any way, fails to read
 * with a clear error instead of decrypting. This is why the codec must be
 * called with a context `{ key }`, as `PostgresStorage` does. It also means
 * that changing the key builder (e.g. the prefix of `prefixKeys`) makes the
 * existing values unreadable: to move them, read each with a storage using the
 * old key builder and write it with one using the new one.
 *
 * Rotation: with `secret: [newSecret, oldSecret]` values are written with the
 * first secret and read with whichever one they were written with; a session
 * read with the old one is stored again under the new one when it is written back.
 *
 * Not protected: an older value of the same key written back in place of the
 * current one (it is a valid value for that key), deleted rows, and anything
 * done by whoever holds the secret (the bot itself).
 *
 * `update()` cannot merge encrypted values in the database: it merges them in
 * JavaScript, with a compare-and-set, schema or not.
 *
 * @throws StorageOptionError when a secret is shorter than 32 characters
 */
export function encryptedCodec(options: EncryptedCodecOptions): LayeredCodec {
  const secrets = typeof options?.secret === "string" ? [options.secret] : [...(options?.secret ?? [])];
  if (
    secrets.length === 0 ||
    secrets.some((secret) => typeof secret !== "string" || secret.length < MIN_SECRET_LENGTH)
  ) {
    throw new StorageOptionError(
      "secret",
      `encryptedCodec needs a secret of at least ${MIN_SECRET_LENGTH} characters; generate one with \`openssl rand -base64 32\``,
    );
  }
  const inner = options.codec ?? strictJson;
  let keys: Promise<CryptoKey[]> | undefined;
  const allKeys = () => (keys ??= Promise.all(secrets.map(deriveKey)));

  const wrap = async (text: string, context?: CodecContext) => {
    const additionalData = boundTo(context);
    const [key] = await allKeys();
    const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
    const sealed = new Uint8Array(
      await crypto.subtle.encrypt({ name: "AES-GCM", iv, additionalData }, key as CryptoKey, encoder.encode(text)),
    );
    return JSON.stringify(`${VERSION}.${toBase64Url(iv)}.${toBase64Url(sealed)}`);
  };
  const unwrap = async (text: string, context?: CodecContext) => {
    const additionalData = boundTo(context);
    const { iv, sealed } = readToken(text);
    for (const [index, key] of (await allKeys()).entries()) {
      // GCM authenticates key, IV, ciphertext and AAD together: a wrong secret, a
      // wrong stored key or a flipped bit fails here, never yields garbage.
      const plaintext = await crypto.subtle
        .decrypt({ name: "AES-GCM", iv, additionalData }, key, sealed)
        .catch(() => undefined);
      if (plaintext !== undefined) {
        if (index > 0 && context instanceof KeyContext) context.markOtherSecret();
        return decoder.decode(plaintext);
      }
    }
    throw new Error(
      "the stored value cannot be decrypted: it was encrypted with another secret, for another key, or altered",
    );
  };

  return {
    inner,
    wrap,
    unwrap,
    async stringify(value: unknown, context?: CodecContext) {
      boundTo(context);
      const text: unknown = await inner.stringify(value, context);
      if (typeof text !== "string") {
        throw new TypeError(
          `the inner codec of encryptedCodec returned ${text === null ? "null" : typeof text}, not a string`,
        );
      }
      return wrap(text, context);
    },
    async parse(text: string, context?: CodecContext) {
      return inner.parse(await unwrap(text, context), context);
    },
  };
}

/** The additional data that binds a value to its stored key; throws without a `{ key }` context. */
function boundTo(context: unknown): BufferSource {
  const key = typeof context === "object" && context !== null ? (context as { key?: unknown }).key : undefined;
  if (typeof key !== "string") {
    throw new TypeError(
      "encryptedCodec binds each value to its stored key, so it must be called with a context { key } " +
        "as its second argument (as PostgresStorage does), e.g. codec.parse(text, { key })",
    );
  }
  return encoder.encode(AAD_LABEL + key);
}

/** The IV and ciphertext of a stored token, or an error saying why the text is not one. */
function readToken(text: string): { iv: Uint8Array<ArrayBuffer>; sealed: Uint8Array<ArrayBuffer> } {
  const notAToken = (why: string) =>
    new Error(`the stored value is not an encryptedCodec token "${VERSION}.<iv>.<ciphertext>": ${why}`);
  let token: unknown;
  try {
    token = JSON.parse(text);
  } catch {
    throw notAToken("it is not JSON");
  }
  if (typeof token !== "string") {
    // Never quote the value: unencrypted, it is exactly what must not reach a log.
    const found = token === null ? "null" : Array.isArray(token) ? "an array" : `a ${typeof token}`;
    throw notAToken(`it is ${found}, not a string (was it stored before encryption was turned on?)`);
  }
  const segments = token.split(".");
  if (segments[0] === UNBOUND_VERSION) {
    throw new Error(
      `the stored value is a "${UNBOUND_VERSION}" token, the unbound pre-release format of encryptedCodec, ` +
        `which is not read any more because it does not bind the value to its key; write the session again`,
    );
  }
  if (segments.length !== 3) throw notAToken(`it has ${segments.length} dot-separated segments, not 3`);
  const [version, iv, sealed] = segments as [string, string, string];
  if (version !== VERSION) throw notAToken(`its version is not "${VERSION}"`);
  const ivBytes = fromCanonicalBase64Url(iv);
  const sealedBytes = fromCanonicalBase64Url(sealed);
  if (ivBytes === undefined || sealedBytes === undefined) throw notAToken("a segment is not canonical base64url");
  if (ivBytes.length !== IV_BYTES) throw notAToken(`its IV is ${ivBytes.length} bytes, not ${IV_BYTES}`);
  if (sealedBytes.length < TAG_BYTES)
    throw notAToken(`its ciphertext is ${sealedBytes.length} bytes, shorter than the ${TAG_BYTES}-byte tag`);
  return { iv: ivBytes, sealed: sealedBytes };
}

async function deriveKey(secret: string): Promise<CryptoKey> {
  const material = await crypto.subtle.importKey("raw", encoder.encode(secret), "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    // "v2": the bound format gets a key of its own, unrelated to the unbound format's.
    {
      name: "HKDF",
      hash: "SHA-256",
      salt: encoder.encode("grammy-postgres-storage"),
      info: encoder.encode("session values v2"),
    },
    material,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}
