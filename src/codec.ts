import { PostgresStorageError, StorageOptionError, describe, showKey } from "./errors.ts";
import type { Trace } from "./observe.ts";

/** What the storage tells a codec about the value it encodes or decodes. */
export interface CodecContext {
  /** The key the value is stored under (after the key builder), which `encryptedCodec` binds into its ciphertext. */
  readonly key: string;
}

/**
 * Turns session values into text and back. The text is stored in a `json`
 * column, so it must be JSON; `JSON`, `superjson` and `devalue` can be passed
 * as they are. Either method may return a promise (encryption through Web
 * Crypto does). Both receive a {@link CodecContext} as their second argument,
 * which codecs that do not need it ignore; one that needs it declares it as
 * `context?: CodecContext`. (The interface types it as `unknown` because
 * JSON, superjson and devalue take other optional arguments in that place.)
 */
export interface Codec {
  /**
   * Encodes a value as JSON text.
   *
   * @param context a {@link CodecContext}
   */
  stringify(value: unknown, context?: unknown): string | PromiseLike<string>;
  /**
   * Decodes text that `stringify` produced.
   *
   * @param context a {@link CodecContext}
   */
  parse(text: string, context?: unknown): unknown;
  /**
   * `true` when `stringify` writes an object as a JSON object with the same
   * top-level keys, so that `update()` can merge a patch inside the database.
   * `JSON` counts as mergeable without saying so.
   */
  readonly mergeable?: boolean;
  /**
   * For a codec that transforms the text of another codec (`encryptedCodec`
   * encrypts it, `compressedCodec` compresses it): that codec. Together with
   * `wrap` and `unwrap`, it lets the storage compare and merge sessions on the
   * inner codec's text, so that a session written back unchanged costs neither
   * a statement nor an encryption (but once, for a session `encryptedCodec`
   * read with another secret than the one it writes with).
   */
  readonly inner?: Codec;
  /** Turns the `inner` codec's text into the stored text; only with `inner`. */
  wrap?(text: string, context?: unknown): string | PromiseLike<string>;
  /** Turns stored text back into the `inner` codec's text, refusing text it did not write; only with `inner`. */
  unwrap?(text: string, context?: unknown): string | PromiseLike<string>;
}

/**
 * A codec that transforms the text of another codec, and says so: the storage
 * compares and merges sessions on the innermost codec's text, which it reaches
 * through `unwrap`, layer by layer.
 *
 * `stringify(value)` is `wrap(await inner.stringify(value))`, and `parse(text)`
 * is `inner.parse(await unwrap(text))`, each with the same context.
 */
export interface LayeredCodec extends Codec {
  /** Encodes a value: the inner codec's text, wrapped. */
  stringify(value: unknown, context?: unknown): Promise<string>;
  /** Decodes a stored text: unwrapped, then parsed by the inner codec. */
  parse(text: string, context?: unknown): Promise<unknown>;
  /** The codec whose text this one transforms. */
  readonly inner: Codec;
  /** Turns the inner codec's text into the stored text. */
  wrap(text: string, context?: unknown): Promise<string>;
  /**
   * Turns a stored text back into the inner codec's text.
   *
   * @throws Error when the text is a token this codec did not write
   */
  unwrap(text: string, context?: unknown): Promise<string>;
}

export { DATE_TAG, TAGS_DATES, strictJson, toStrictJson } from "./strict-json.ts";

/**
 * The context the storage passes to codecs, with the grammY key beside it for
 * messages. Its keys are getters, not own properties, because codecs passed as
 * they are may read a second argument as something else: devalue calls every
 * own property of it as a reducer, and JSON ignores an object that is no function.
 */
export class KeyContext implements CodecContext {
  readonly #storedKey: string;
  readonly #grammyKey: string;
  readonly #trace: Trace | undefined;
  #otherSecret = false;

  /**
   * @param grammyKey the key grammY asked for
   * @param storedKey the key in the table
   * @param trace the operation's trace, when the storage is observed
   */
  constructor(grammyKey: string, storedKey: string, trace?: Trace) {
    this.#grammyKey = grammyKey;
    this.#storedKey = storedKey;
    this.#trace = trace;
  }

  /** The trace of the operation, when the storage is observed. */
  get trace(): Trace | undefined {
    return this.#trace;
  }

  /** The stored key. */
  get key(): string {
    return this.#storedKey;
  }

  /** The key grammY asked for, as messages show it. */
  get grammyKey(): string {
    return this.#grammyKey;
  }

  /**
   * Whether a codec layer read the stored text with another secret than the one it writes with (an older one after
   * a rotation, or a newer one while the rotation rolls out).
   */
  get readWithOtherSecret(): boolean {
    return this.#otherSecret;
  }

  /**
   * Called by `encryptedCodec` when it read the stored text with another secret than the one it writes with: a
   * write-back of the session unchanged then stores it again under that one, which is how rows move to a new secret.
   */
  markOtherSecret(): void {
    this.#otherSecret = true;
  }
}

/**
 * Checks the `codec` option.
 *
 * @throws StorageOptionError when it lacks `stringify` or `parse`
 */
export function checkCodec(codec: Codec): Codec {
  if (typeof codec?.stringify !== "function" || typeof codec.parse !== "function") {
    throw new StorageOptionError("codec", "codec must have stringify(value) and parse(text), as JSON and superjson do");
  }
  return codec;
}

/** Whether `update()` may merge this codec's output in the database. */
export function isMergeable(codec: Codec): boolean {
  return codec === JSON || codec.mergeable === true;
}

/** The error of a value that a codec (or a layer of it) cannot encode: nothing was written. */
export const cannotEncode = (at: KeyContext, error: unknown, hint = ""): PostgresStorageError =>
  new PostgresStorageError(
    `nothing was written: the value for key ${showKey(at.grammyKey)} cannot be encoded (${describe(error)})${hint}`,
    { cause: error },
  );

/** The error of a stored text that a codec (or a layer of it) cannot decode: the row is unchanged. */
export const cannotDecode = (at: KeyContext, error: unknown): PostgresStorageError =>
  new PostgresStorageError(
    `the stored value for key ${showKey(at.grammyKey)} cannot be decoded (${describe(error)}); ` +
      "written with another codec or secret? The row is unchanged",
    { cause: error },
  );

/**
 * Encodes a value before anything is sent, so a value that cannot be stored
 * is refused while the stored one is still intact. Not async: a codec that
 * answers at once (every built-in one) is answered without a promise per write.
 *
 * @throws PostgresStorageError when the codec throws or answers no string (a promise rejects instead)
 */
export function encode(codec: Codec, value: unknown, context: KeyContext): string | Promise<string> {
  let encoded: unknown;
  try {
    encoded = codec.stringify(value, context);
  } catch (error) {
    throw cannotEncode(context, error, hintFor(codec));
  }
  if (typeof encoded === "string") return encoded;
  return Promise.resolve(encoded).then(
    (text) => encodedText(context, text),
    (error: unknown) => Promise.reject(cannotEncode(context, error, hintFor(codec))),
  );
}

// The library's codecs name the path and the codec to use themselves; plain JSON's own errors name neither.
const hintFor = (codec: Codec) =>
  codec === JSON ? "; superjson and devalue store more types than JSON (BigInt, Map, cycles)" : "";

/** The codec's answer, checked to be text. */
function encodedText(context: KeyContext, text: unknown): string {
  if (typeof text !== "string") {
    throw new PostgresStorageError(
      `nothing was written: the codec turned the value for key ${showKey(context.grammyKey)} into ` +
        `${text === null ? "null" : typeof text}, not a string${text === undefined ? " (to remove a session, delete it)" : ""}`,
    );
  }
  return text;
}

/** Decodes stored text; a failure is an error, never a missing value. */
export function decode(codec: Codec, text: string, context: KeyContext): unknown {
  // Not async: a synchronous codec's value is answered as it is, without a promise per read.
  try {
    const decoded = codec.parse(text, context);
    return decoded instanceof Promise
      ? decoded.catch((error: unknown) => Promise.reject(cannotDecode(context, error)))
      : decoded;
  } catch (error) {
    throw cannotDecode(context, error);
  }
}
