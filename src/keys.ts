import { KeyContext } from "./codec.ts";
import { StorageOptionError, showKey } from "./errors.ts";
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
 * Every storage in the table must use the same separator and a prefix of its
 * own, and the separator may occur in `prefix + separator` only at its start
 * and at its end. So the prefix may not contain the separator after its first
 * character: with `prefixKeys("shop")` and `prefixKeys("shop:eu")` in one
 * table, `"eu:42"` under the first and `"42"` under the second would be one
 * row. Nor may it end with how a separator that overlaps itself begins: with
 * the separator `"--"`, `prefixKeys("bot-", "--")` with key `"1"` and
 * `prefixKeys("bot", "--")` with key `"-1"` would both be `"bot---1"`.
 * Prefixes that keep this rule never meet: no two of them build one stored
 * key, and none parses another's. It refuses exactly the prefixes that would
 * meet another it accepts. (A one-character separator cannot overlap itself,
 * so for it the rule is "not in the prefix but as its first character".)
 *
 * @param prefix the namespace, for example the bot's name or id
 * @param separator placed between prefix and key; defaults to `":"`
 * @throws StorageOptionError when either is empty, or the separator occurs in
 *   `prefix + separator` anywhere but at its start and its end
 */
export function prefixKeys(prefix: string, separator = ":"): KeyBuilder {
  for (const [name, value] of [
    ["prefix", prefix],
    ["separator", separator],
  ] as const) {
    if (typeof value !== "string" || value === "")
      throw new StorageOptionError(name, "prefixKeys(prefix, separator) takes two non-empty strings");
  }
  const start = prefix + separator;
  // Two prefixes p and p + x (x non-empty) build one stored key p + s + k = p + x + s + k' exactly when s + k =
  // x + s + k', that is when the separator occurs in p + x + s at the end of p. So no two prefixes meet when each
  // has the separator in prefix + separator only at its end and at its start (where no shorter, non-empty prefix
  // ends). And one that has it at `at` in between meets the prefix of its first `at` characters, which passes.
  const at = start.indexOf(separator, 1);
  if (at < prefix.length) throw new StorageOptionError("prefix", overlapMessage(prefix, separator, at));
  return {
    prefix: start,
    build: (key) => start + key,
    parse: (storedKey) => (storedKey.startsWith(start) ? storedKey.slice(start.length) : undefined),
  };
}

/** Whether `prefixKeys(prefix, separator)` accepts the pair. */
const keepsApart = (prefix: string, separator: string) => (prefix + separator).indexOf(separator, 1) === prefix.length;

/**
 * Why `prefixKeys` refuses `prefix`, whose `prefix + separator` has the
 * separator at `at` too, with an example of two keys that would meet and a
 * prefix (and a separator) that it would accept instead.
 */
function overlapMessage(prefix: string, separator: string, at: number): string {
  const [p, s] = [JSON.stringify(prefix), JSON.stringify(separator)];
  // The prefix with the separator's occurrences replaced, or its characters from `at` on, or all its characters.
  const spare = ["-", "_", ".", "0"].find((char) => !separator.includes(char));
  const replaced = (from: number) =>
    spare === undefined
      ? ""
      : prefix.slice(0, from) +
        Array.from(prefix.slice(from), (char) => (separator.includes(char) ? spare : char)).join("");
  const candidates = [spare === undefined ? "" : prefix.split(separator).join(spare), replaced(at), replaced(0)];
  const better = candidates.find((candidate) => candidate !== "" && keepsApart(candidate, separator));
  const otherSeparator = [":", "/", "|", "#"].find((char) => !prefix.includes(char));
  if (at + separator.length <= prefix.length) {
    return (
      `prefixKeys: the prefix ${p} contains the separator ${s}, so its keys could be another prefix's keys; ` +
      `use a prefix without it${better === undefined ? "" : `, such as ${JSON.stringify(better)}`}`
    );
  }
  // The prefix ends with the start of a separator that overlaps itself: the shorter prefix before that start,
  // with a key that begins with the rest, builds the same stored key.
  const tail = prefix.slice(at);
  const shorter = prefix.slice(0, at);
  const key = (tail + separator).slice(separator.length) + "1";
  return (
    `prefixKeys: the prefix ${p} ends with ${JSON.stringify(tail)}, which is how the separator ${s} begins, so its keys ` +
    `could be another prefix's keys: ${p} with key "1" and ${JSON.stringify(shorter)} with key ${JSON.stringify(key)} ` +
    `are both stored as ${JSON.stringify(prefix + separator + "1")}; use a prefix that does not end so` +
    `${better === undefined ? "" : `, such as ${JSON.stringify(better)}`}` +
    `${otherSeparator === undefined ? "" : `, or a one-character separator such as ${JSON.stringify(otherSeparator)}`}`
  );
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
 * @throws StorageOptionError (option `"key"`) when the key is not a non-empty
 * string or the stored key could not be stored faithfully, or (option
 * `"keyBuilder"`) when the builder returns no string
 */
export function keyContext(keys: KeyBuilder, key: unknown, trace?: Trace): KeyContext {
  return new KeyContext(key as string, storedKey(keys, key), trace);
}

/**
 * The key `key` is stored under, checked as {@link keyContext} does.
 *
 * @throws StorageOptionError as {@link keyContext} does
 */
export function storedKey(keys: KeyBuilder, key: unknown): string {
  if (typeof key !== "string" || key === "") {
    throw new StorageOptionError(
      "key",
      `session keys must be strings, got ${key === "" ? "an empty one" : key === null ? "null" : typeof key}; check getSessionKey`,
    );
  }
  const stored: unknown = keys.build(key);
  if (typeof stored !== "string") {
    throw new StorageOptionError(
      "keyBuilder",
      `keyBuilder.build(${showKey(key)}) returned ${typeof stored}, not a string`,
    );
  }
  // One quick test on the hot path; the precise reason only when it fails (a surrogate pair passes).
  // Drivers would turn a lone surrogate into U+FFFD, so two keys could meet in one row.
  if (stored.length <= MAX_KEY_LENGTH && !/[\0\ud800-\udfff]/.test(stored)) return stored;
  const problem = /\0/.test(stored)
    ? "contains U+0000"
    : /\p{Cs}/u.test(stored)
      ? "contains a lone surrogate"
      : stored.length > MAX_KEY_LENGTH && `is longer than ${MAX_KEY_LENGTH} characters`;
  if (problem) throw new StorageOptionError("key", `key ${showKey(key)} is refused: stored, it ${problem}`);
  return stored;
}
