import { PostgresStorageError, describe, showKey } from "./errors.js";

/**
 * Turns session values into text and back. The text is stored in a `json`
 * column, so it must be JSON; `JSON` (the default), `superjson` and `devalue`
 * can be passed as they are. Either method may return a promise (encryption
 * through Web Crypto does).
 */
export interface Codec {
  /** Encodes a value as JSON text. */
  stringify(value: unknown): string | PromiseLike<string>;
  /** Decodes text that `stringify` produced. */
  parse(text: string): unknown;
  /**
   * `true` when `stringify` writes an object as a JSON object with the same
   * top-level keys, so that `update()` can merge a patch inside the database.
   * `JSON` counts as mergeable without saying so.
   */
  readonly mergeable?: boolean;
}

/**
 * The default codec: JSON that refuses what JSON would silently change
 * (NaN and Infinity become null, functions and symbols vanish) instead of
 * storing something else than was written.
 */
export const strictJson: Codec = {
  mergeable: true,
  stringify: (value) => JSON.stringify(value, refuseLossy),
  parse: JSON.parse,
};

/** A JSON.stringify replacer that throws where JSON would store something else than it was given. */
export function refuseLossy(this: Record<string, unknown>, key: string, value: unknown): unknown {
  // toJSON has already run: an invalid Date arrives as null, so look at the original.
  const original = this[key];
  if (typeof value === "function" || typeof value === "symbol") throw new TypeError(`a ${typeof value} has no JSON form`);
  if ((typeof value === "number" && !Number.isFinite(value)) || (original instanceof Date && Number.isNaN(original.getTime()))) {
    throw new TypeError(`${String(original)} has no JSON form`);
  }
  return value;
}

/** Whether `update()` may merge this codec's output in the database. */
export function isMergeable(codec: Codec): boolean {
  return codec === JSON || codec.mergeable === true;
}

/**
 * Encodes a value before anything is sent, so a value that cannot be stored
 * is refused while the stored one is still intact.
 */
export async function encode(codec: Codec, value: unknown, key: string): Promise<string> {
  let text: unknown;
  try {
    text = await codec.stringify(value);
  } catch (error) {
    throw new PostgresStorageError(
      `nothing was written: the value for key ${showKey(key)} cannot be encoded ` +
        `(${describe(error)}); superjson and devalue store more types than JSON (BigInt, Map, cycles)`,
      { cause: error },
    );
  }
  if (typeof text !== "string") {
    throw new PostgresStorageError(
      `nothing was written: the codec turned the value for key ${showKey(key)} into ` +
        `${text === null ? "null" : typeof text}, not a string` +
        (text === undefined ? " (to remove a session, delete it)" : ""),
    );
  }
  return text;
}

/** Decodes stored text; a failure is an error, never a missing value. */
export async function decode(codec: Codec, text: string, key: string): Promise<unknown> {
  try {
    return await codec.parse(text);
  } catch (error) {
    throw new PostgresStorageError(
      `the stored value for key ${showKey(key)} cannot be decoded (${describe(error)}); ` +
        `written with another codec or secret? The row is unchanged`,
      { cause: error },
    );
  }
}
