import { PostgresStorageError } from "./errors.ts";

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
 * @throws PostgresStorageError when either is empty or the prefix contains the separator
 */
export function prefixKeys(prefix: string, separator = ":"): KeyBuilder {
  if (typeof prefix !== "string" || typeof separator !== "string" || prefix === "" || separator === "") {
    throw new PostgresStorageError("prefixKeys(prefix, separator) takes two non-empty strings");
  }
  if (prefix.includes(separator)) {
    const suggestion = JSON.stringify(prefix.split(separator).join(separator === "-" ? "_" : "-"));
    throw new PostgresStorageError(
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

/** A key builder in one shape, whichever the user passed. */
export function normalizeKeyBuilder(option: KeyBuilderOption | undefined): KeyBuilder {
  if (option === undefined) return { build: (key) => key, parse: (key) => key };
  if (typeof option === "function") return { build: option };
  if (typeof option === "object" && option !== null && typeof option.build === "function") {
    return option;
  }
  throw new PostgresStorageError(
    "keyBuilder must be a function (key) => storedKey or { build(key), parse?(storedKey) }, e.g. prefixKeys(\"bot\")",
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
