import { KeyContext } from "./codec.ts";
import { PostgresStorageError, StorageOptionError, showKey } from "./errors.ts";
import type { Trace } from "./observe.ts";

/**
 * Maps grammY's session keys to the keys stored in the table, and back.
 * `prefixKeys("bot1")` is one; any object of this shape is another.
 */
export interface KeyBuilder {
  /** The stored key for a grammY session key. */
  build(key: string): string;
  /**
   * The grammY key for a stored key, or `undefined` when the stored key is not
   * one this builder makes. `readAllKeys` and `readAllEntries` need it.
   */
  parse?(storedKey: string): string | undefined;
  /**
   * A prefix that every stored key this builder makes starts with, so that
   * `readAll*` scans only that range of the table instead of all of it.
   */
  readonly prefix?: string;
}

/** A `KeyBuilder`, or just the function that builds stored keys. */
export type KeyBuilderOption = KeyBuilder | ((key: string) => string);

/**
 * A key builder that stores `key` as `${prefix}${separator}${key}`, so that
 * several bots or several session fragments can share one table.
 *
 * The prefix may not contain the separator: with `prefixKeys("shop")`
 * and `prefixKeys("shop:eu")` in one table, `"eu:42"` under the first and
 * `"42"` under the second would be one row. Prefixes without the separator
 * never meet, as long as every storage in the table uses the same separator
 * and has a prefix of its own.
 *
 * @param prefix the namespace, for example the bot's name or id
 * @param separator placed between prefix and key; defaults to `":"`
 * @throws StorageOptionError when either is empty or the prefix contains the separator
 */
export function prefixKeys(prefix: string, separator = ":"): KeyBuilder {
  for (const [name, value] of [
    ["prefix", prefix],
    ["separator", separator],
  ] as const) {
    if (typeof value !== "string" || value === "")
      throw new StorageOptionError(name, "prefixKeys(prefix, separator) takes two non-empty strings");
  }
  if (prefix.includes(separator)) {
    const suggestion = JSON.stringify(prefix.split(separator).join(separator === "-" ? "_" : "-"));
    throw new StorageOptionError(
      "prefix",
      `prefixKeys: the prefix ${JSON.stringify(prefix)} contains the separator ${JSON.stringify(separator)}, so its keys could be ` +
        `another prefix's keys; use a prefix without it, such as ${suggestion}`,
    );
  }
  const start = prefix + separator;
  return {
    prefix: start,
    build: (key) => start + key,
    parse: (storedKey) => (storedKey.startsWith(start) ? storedKey.slice(start.length) : undefined),
  };
}

/**
 * A key builder in one shape, whichever the user passed.
 *
 * @throws StorageOptionError when it is neither a function nor an object with `build`
 */
export function normalizeKeyBuilder(option: KeyBuilderOption | undefined): KeyBuilder {
  if (option === undefined) return { build: (key) => key, parse: (key) => key };
  if (typeof option === "function") return { build: option };
  if (typeof option === "object" && option !== null && typeof option.build === "function") {
    return option;
  }
  throw new StorageOptionError(
    "keyBuilder",
    'keyBuilder must be a function (key) => storedKey or { build(key), parse?(storedKey) }, e.g. prefixKeys("bot")',
  );
}

/**
 * The exclusive upper end of the range of keys starting with `prefix`, in
 * bytewise order (which for UTF-8 is code point order), or `undefined` when
 * the range is unbounded.
 */
export function prefixUpperBound(prefix: string): string | undefined {
  const points = Array.from(prefix, (char) => char.codePointAt(0) ?? 0);
  while (points.length > 0) {
    let last = (points.pop() ?? 0) + 1;
    if (last >= 0xd800 && last <= 0xdfff) last = 0xe000; // surrogates are not characters
    if (last <= 0x10ffff) return String.fromCodePoint(...points, last);
  }
  return undefined;
}

// Keys index in a btree, whose entries must stay under a third of a page.
const MAX_KEY_LENGTH = 512;

/**
 * The key grammY gave and the key it is stored under, checked.
 *
 * @throws PostgresStorageError when the key is not a non-empty string, the
 * builder returns no string, or the stored key could not be stored faithfully
 */
export function keyContext(keys: KeyBuilder, key: unknown, trace?: Trace): KeyContext {
  return new KeyContext(key as string, storedKey(keys, key), trace);
}

/**
 * The key `key` is stored under, checked as {@link keyContext} does.
 *
 * @throws PostgresStorageError as {@link keyContext} does
 */
export function storedKey(keys: KeyBuilder, key: unknown): string {
  if (typeof key !== "string" || key === "") {
    throw new PostgresStorageError(
      `session keys must be strings, got ${key === "" ? "an empty one" : key === null ? "null" : typeof key}; check getSessionKey`,
    );
  }
  const stored: unknown = keys.build(key);
  if (typeof stored !== "string") {
    throw new PostgresStorageError(`keyBuilder.build(${showKey(key)}) returned ${typeof stored}, not a string`);
  }
  // One quick test on the hot path; the precise reason only when it fails.
  if (stored.length <= MAX_KEY_LENGTH && !/[\0\ud800-\udfff]/.test(stored)) return stored;
  // Drivers would turn a lone surrogate into U+FFFD, so two keys could meet in one row.
  const problem = /\0/.test(stored)
    ? "contains U+0000"
    : /\p{Cs}/u.test(stored)
      ? "contains a lone surrogate"
      : stored.length > MAX_KEY_LENGTH
        ? `is longer than ${MAX_KEY_LENGTH} characters`
        : "";
  if (problem !== "") throw new PostgresStorageError(`key ${showKey(key)} is refused: stored, it ${problem}`);
  return stored;
}
