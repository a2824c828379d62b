import { strictJson, type Codec } from "./codec.js";
import { PostgresStorageError } from "./errors.js";

/** Options of {@link encryptedCodec}. */
export interface EncryptedCodecOptions {
  /**
   * The secret the key is derived from: at least 32 characters of randomness
   * (e.g. `openssl rand -base64 32`), kept in your platform's secrets. To rotate,
   * pass `[newSecret, oldSecret]`: values are written with the first and read
   * with whichever fits.
   */
  secret: string | readonly string[];
  /** Encodes values before encryption. Defaults to the storage's default: JSON that refuses NaN, Infinity and functions. */
  codec?: Codec | undefined;
}

const VERSION = "gps1";
const MIN_SECRET_LENGTH = 32;
const IV_BYTES = 12;
const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * A codec that encrypts every value with AES-256-GCM through Web Crypto
 * (Workers, Vercel, Node 18+, Deno, Bun alike). The key is derived from the
 * secret with HKDF-SHA-256. What is stored is a JSON string
 * (`"gps1.<iv>.<ciphertext>"`, base64url), so the value column stays valid
 * JSON while revealing nothing but the value's length. A value written under
 * another secret, or altered in any way, fails to read with a clear error:
 * GCM authenticates every byte.
 *
 * `update()` cannot merge encrypted values; use read and write with this codec.
 */
export function encryptedCodec(options: EncryptedCodecOptions): Codec {
  const secrets = typeof options?.secret === "string" ? [options.secret] : [...(options?.secret ?? [])];
  if (secrets.length === 0 || secrets.some((secret) => typeof secret !== "string" || secret.length < MIN_SECRET_LENGTH)) {
    throw new PostgresStorageError(
      `encryptedCodec needs a secret of at least ${MIN_SECRET_LENGTH} characters; generate one with \`openssl rand -base64 32\``,
    );
  }
  const inner = options.codec ?? strictJson;
  let keys: Promise<CryptoKey[]> | undefined;
  const allKeys = () => (keys ??= Promise.all(secrets.map(deriveKey)));

  return {
    async stringify(value) {
      const plaintext = encoder.encode(await inner.stringify(value));
      const [key] = await allKeys();
      const iv = crypto.getRandomValues(new Uint8Array(IV_BYTES));
      const sealed = new Uint8Array(await crypto.subtle.encrypt({ name: "AES-GCM", iv }, key as CryptoKey, plaintext));
      return JSON.stringify(`${VERSION}.${toBase64Url(iv)}.${toBase64Url(sealed)}`);
    },
    async parse(text) {
      const token: unknown = JSON.parse(text);
      const [version, iv, sealed] = typeof token === "string" ? token.split(".") : [];
      if (version !== VERSION || iv === undefined || sealed === undefined) {
        throw new Error("the stored value was not written by encryptedCodec (was it stored before encryption was turned on?)");
      }
      let plaintext: ArrayBuffer | undefined;
      for (const key of await allKeys()) {
        // GCM authenticates: a wrong key fails here, never yields garbage. Try the next one.
        plaintext ??= await crypto.subtle.decrypt({ name: "AES-GCM", iv: fromBase64Url(iv) }, key, fromBase64Url(sealed)).catch(() => undefined);
      }
      if (plaintext === undefined) {
        throw new Error("the stored value cannot be decrypted: it was encrypted with another secret, or it has been altered");
      }
      return inner.parse(decoder.decode(plaintext));
    },
  };
}

async function deriveKey(secret: string): Promise<CryptoKey> {
  const material = await crypto.subtle.importKey("raw", encoder.encode(secret), "HKDF", false, ["deriveKey"]);
  return crypto.subtle.deriveKey(
    { name: "HKDF", hash: "SHA-256", salt: encoder.encode("grammy-postgres-storage"), info: encoder.encode("session values v1") },
    material,
    { name: "AES-GCM", length: 256 },
    false,
    ["encrypt", "decrypt"],
  );
}

function toBase64Url(bytes: Uint8Array): string {
  let binary = "";
  for (let i = 0; i < bytes.length; i += 0x8000) binary += String.fromCharCode(...bytes.subarray(i, i + 0x8000));
  return btoa(binary).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

function fromBase64Url(text: string): Uint8Array<ArrayBuffer> {
  const binary = atob(text.replace(/-/g, "+").replace(/_/g, "/"));
  const bytes = new Uint8Array(binary.length);
  for (let i = 0; i < binary.length; i += 1) bytes[i] = binary.charCodeAt(i);
  return bytes;
}
