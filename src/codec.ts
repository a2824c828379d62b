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
   * a statement nor an encryption.
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

/**
 * The default codec: JSON that refuses every value whose JSON text would not
 * read back equal (a `Map` would come back as `{}`, a `Date` as a string, `NaN`
 * as `null`, a function not at all), naming where in the value it is and the
 * codec that keeps it, instead of storing something else than was written.
 * A property whose value is `undefined` is allowed: JSON leaves it out, and it
 * reads back as missing, which is what bots mean by it. So is `-0`, the one
 * value stored as another: JSON writes it as `0` (and `Math.round(-0.4)` is
 * `-0`, so refusing it would refuse ordinary arithmetic), and it reads back as
 * `0`, which equals it under `===`.
 *
 * The text is written by the same walk that checks the value, which reads each
 * property once: a getter that answers differently each time is stored as it
 * answered the check, never as something that was not checked.
 */
export const strictJson: Codec = {
  mergeable: true,
  stringify(value) {
    return toStrictJson(value) as string;
  },
  parse: JSON.parse,
};

/** Nesting beyond this is refused: JSON.stringify runs out of stack at about twice as deep, and no session needs it. */
const MAX_DEPTH = 2000;

/** The key of the one-key object `jsonWithDates` stores a `Date` as. */
export const DATE_TAG = "$date";

/** Marks a codec that stores a `Date` as `{"$date": …}`, which an in-database merge must not take for an object. */
export const TAGS_DATES: unique symbol = Symbol("tags dates");

/**
 * Why the walk stopped. It travels up beside the walk's `undefined` answer, and
 * each level adds its key to `path` on the way: nothing is allocated for paths
 * unless a value is refused. The message is made only then, from `kind` and
 * `value`, which also keeps the walk itself small enough for V8 to optimize well.
 */
interface Refusal {
  /** The keys from the refused spot up to the root, deepest first. */
  readonly path: (string | number)[];
  /** Where the refused primitive was (`"property"`, `"element"`, `"whole"`), or what is wrong with the object. */
  readonly kind: "property" | "element" | "whole" | "hole" | "object" | "toJSON" | "tagged" | "cycle" | "deep";
  readonly value: unknown;
  /** For a cycle: how many keys of the path lead to the object it comes back to. */
  readonly cycleAt: number;
}

/** One walk's state: created per call, so a getter that encodes another value cannot disturb it. */
interface Walk {
  readonly dates: boolean;
  /** The objects from the root down to the current one, by depth: a cycle comes back to one of them. */
  readonly ancestors: object[];
  /** Why the walk answered `undefined`. */
  refusal: Refusal | undefined;
}

/**
 * The JSON text of `value`, written by one walk that reads each property once
 * and checks what it read, so that the text holds exactly what was checked.
 * It is `JSON.stringify(value)` (the same text, byte for byte) for every value
 * it accepts, but for a getter, which JSON.stringify would call again.
 *
 * Throws a `TypeError` naming the path (`value.cart.items[3]`) and a codec to
 * use instead when JSON would not give `value` back as it is: anything but
 * strings, finite numbers, booleans, `null`, dense arrays and plain objects
 * (whose prototype is `Object.prototype` or `null`), and so a `Map`, `Set`,
 * `Date`, typed array, class instance, boxed primitive, array subclass,
 * `BigInt`, `NaN`, `±Infinity`, a function or symbol (as a property too: JSON
 * would drop it), a `toJSON` method, `undefined` or a hole in an array, a
 * cycle, or nesting deeper than 2000 levels. `undefined` as an object property
 * is allowed (it is left out, and reads back as missing), and `-0` is written
 * as `0`, as JSON does. Like JSON, it looks only at own enumerable
 * string-keyed properties and array elements: symbol-keyed and non-enumerable
 * properties (and non-index properties of arrays) are left out of the text,
 * and not checked.
 *
 * @param dates write valid `Date`s as `{"$date": "<ISO 8601>"}` (for
 *   `jsonWithDates`), and refuse an object whose only key is `$date`, which
 *   would read back as one
 * @returns the text, or `undefined` when the whole value is `undefined` (as
 *   JSON.stringify answers), for the caller to explain
 */
export function toStrictJson(value: unknown, dates = false): string | undefined {
  let refusal: Refusal | undefined;
  if (typeof value === "object") {
    if (value === null) return "null";
    const walk: Walk = { dates, ancestors: [], refusal: undefined };
    const text = write(value, 0, walk);
    if (text !== undefined) return text;
    refusal = walk.refusal;
  } else if (typeof value === "string") {
    return quote(value);
  } else if (typeof value === "boolean") {
    return value ? "true" : "false";
  } else if (isFiniteNumber(value)) {
    return String(value);
  } else if (value === undefined) {
    // JSON.stringify answers undefined, and encode() says to delete the session instead.
    return undefined;
  } else {
    refusal = refuse("whole", value);
  }
  throw new TypeError(explain(refusal as Refusal, dates));
}

// Number.isFinite is false for anything that is no number.
const isFiniteNumber = (value: unknown) => Number.isFinite(value);

// For every finite number, String(n) is JSON's text for it (both are Number::toString, and both write -0 as "0").

/** Characters JSON escapes in a string: quote, backslash, controls, and (when lone) surrogates. */
const NEEDS_ESCAPE = /["\\\u0000-\u001f\ud800-\udfff]/;

/**
 * A string as JSON writes it. Most session strings are short and need no escape, which a test finds faster than
 * JSON.stringify writes them; long ones, and the rest, JSON.stringify writes.
 */
const quote = (text: string) => (text.length > 512 || NEEDS_ESCAPE.test(text) ? JSON.stringify(text) : `"${text}"`);

/**
 * Property names as the walk writes them (`"name":`), by name. Sessions of one bot share their names, so most
 * are found here instead of scanned again; short names only, and at most 1024, so it stays small.
 */
const quotedKeys = new Map<string, string>();

// The built-in, not whatever a Date (or Date.prototype, later) answers to the name.
const toISOString = Date.prototype.toISOString;

const refuse = (kind: Refusal["kind"], value: unknown, cycleAt = 0): Refusal => ({ path: [], kind, value, cycleAt });

/** Records a refusal in the walk; answers `undefined`, as a refused walk does. */
function stop(walk: Walk, refusal: Refusal): undefined {
  walk.refusal = refusal;
  return undefined;
}

/** Adds `key` to the path of the walk's refusal on its way up; answers `undefined`, as a refused walk does. */
function within(walk: Walk, key: string | number): undefined {
  walk.refusal?.path.push(key);
  return undefined;
}

/**
 * Writes one object or array at `depth` as JSON; answers `undefined` when it
 * cannot be stored, with the reason in `walk.refusal`.
 */
function write(value: object, depth: number, walk: Walk): string | undefined {
  const { ancestors } = walk;
  // A linear scan: sessions are a few levels deep, where it costs less than a Set.
  for (let i = 0; i < depth; i += 1) if (ancestors[i] === value) return stop(walk, refuse("cycle", value, i));
  if (depth >= MAX_DEPTH) return stop(walk, refuse("deep", value));
  ancestors[depth] = value;
  const proto: unknown = Object.getPrototypeOf(value);
  const array = Array.isArray(value);
  if (array ? proto !== Array.prototype : proto !== Object.prototype && proto !== null) {
    if (walk.dates && proto === Date.prototype && !Number.isNaN((value as Date).getTime())) {
      // Valid, so its ISO form needs no escapes.
      return `{"${DATE_TAG}":"${toISOString.call(value)}"}`;
    }
    return stop(walk, refuse("object", value));
  }
  // JSON.stringify calls any toJSON it finds, enumerable or not, and stores what that returns instead.
  // Read once: an own "toJSON" that is no function is written below as read here.
  const toJSON: unknown = (value as { toJSON?: unknown }).toJSON;
  if (typeof toJSON === "function") return stop(walk, refuse("toJSON", value));
  if (array) {
    const elements = value as unknown[];
    const length = elements.length;
    if (length === 0) return "[]";
    let text = "[";
    for (let i = 0; i < length; i += 1) {
      if (i > 0) text += ",";
      const element = elements[i];
      if (typeof element === "string") {
        text += quote(element);
      } else if (typeof element === "object") {
        if (element === null) {
          text += "null";
        } else {
          const inner = write(element, depth + 1, walk);
          if (inner === undefined) return within(walk, i);
          text += inner;
        }
      } else if (typeof element === "boolean") {
        text += element ? "true" : "false";
      } else if (isFiniteNumber(element)) {
        text += String(element);
      } else {
        stop(walk, refuse(i in elements ? "element" : "hole", element));
        return within(walk, i);
      }
    }
    return `${text}]`;
  }
  const object = value as Record<string, unknown>;
  // Object.keys names the own enumerable string keys in JSON.stringify's order (for…in would add inherited ones
  // of a polluted Object.prototype, which JSON leaves out).
  const keys = Object.keys(object);
  let text = "{";
  let written = 0;
  for (let k = 0; k < keys.length; k += 1) {
    const key = keys[k] as string;
    const property = key === "toJSON" ? toJSON : object[key];
    let part: string;
    if (typeof property === "string") {
      part = quote(property);
    } else if (typeof property === "object") {
      if (property === null) {
        part = "null";
      } else {
        const inner = write(property, depth + 1, walk);
        if (inner === undefined) return within(walk, key);
        part = inner;
      }
    } else if (typeof property === "boolean") {
      part = property ? "true" : "false";
    } else if (isFiniteNumber(property)) {
      part = String(property);
    } else if (property === undefined) {
      continue;
    } else {
      stop(walk, refuse("property", property));
      return within(walk, key);
    }
    let name = quotedKeys.get(key);
    if (name === undefined) {
      name = `${quote(key)}:`;
      if (key.length <= 64) {
        if (quotedKeys.size >= 1024) quotedKeys.clear();
        quotedKeys.set(key, name);
      }
    }
    text += written === 0 ? name + part : `,${name}${part}`;
    written += 1;
  }
  // One key written, and that $date: it would read back as a Date.
  if (walk.dates && written === 1 && text.startsWith(`{"${DATE_TAG}":`)) return stop(walk, refuse("tagged", value));
  return `${text}}`;
}

const KEEPS_MORE = "use superjson or devalue, which keep Map, Set, Date and BigInt";

/** The message for a refusal: its path, then what is there, what JSON would make of it, and what to do instead. */
function explain(refusal: Refusal, dates: boolean): string {
  const path = refusal.path.reverse();
  const { kind, value } = refusal;
  let problem: string;
  if (kind === "cycle") {
    problem = `is ${show(path.slice(0, refusal.cycleAt))} again, a cycle; use devalue or superjson, which keep cycles`;
  } else if (kind === "deep") {
    problem = `is nested ${MAX_DEPTH} levels deep; store it flatter`;
  } else if (kind === "toJSON") {
    problem = "has a toJSON method, whose result JSON would store instead; store plain data";
  } else if (kind === "tagged") {
    problem = `is an object whose only key is "${DATE_TAG}", which would read back as a Date; rename the key`;
  } else if (kind === "hole") {
    problem = "is a hole in a sparse array, which JSON stores as null; fill it, or use devalue";
  } else if (kind === "object") {
    problem = unplain(value as object, dates);
  } else if (typeof value === "bigint") {
    problem = `is a BigInt, which JSON cannot store; ${KEEPS_MORE}`;
  } else if (typeof value === "number") {
    problem = `is ${value}, which JSON stores as null; use superjson or devalue, which keep it`;
  } else if (value === undefined) {
    problem = "is undefined, which JSON stores in an array as null; use null, or devalue";
  } else {
    const becomes = kind === "property" ? "leaves out" : kind === "element" ? "stores as null" : "cannot store";
    problem = `is a ${typeof value}, which JSON ${becomes}; store plain data`;
  }
  return `${show(path)} ${problem}`;
}

/** What is wrong with an object whose prototype is not a plain object's (or a plain array's). */
function unplain(value: object, dates: boolean): string {
  const proto: unknown = Object.getPrototypeOf(value);
  const tag = Object.prototype.toString.call(value).slice(8, -1);
  const name = nameOf(proto, tag);
  if (Array.isArray(value))
    return `is ${article(name)} (an Array subclass), which JSON stores as an Array; store a plain array`;
  if (value instanceof Date) {
    if (Number.isNaN(value.getTime()))
      return "is an invalid Date, which JSON stores as null; store null or a valid Date";
    if (proto !== Date.prototype) {
      return `is ${article(name)} (a Date subclass), which reads back as ${dates ? "a Date" : "a string"}; store a plain Date`;
    }
    return "is a Date, which JSON stores as a string; use jsonWithDates, superjson or devalue";
  }
  if (value instanceof Map || value instanceof Set)
    return `is ${article(name)}, which JSON stores as {}; ${KEEPS_MORE}`;
  if (ArrayBuffer.isView(value) && !(value instanceof DataView)) {
    return `is ${article(name)}, which JSON stores as an object of numbers; use superjson or devalue, which keep typed arrays`;
  }
  if (value instanceof ArrayBuffer)
    return `is ${article(name)}, which JSON stores as {}; use devalue, which keeps ArrayBuffer`;
  if (value instanceof RegExp)
    return `is ${article(name)}, which JSON stores as {}; use superjson or devalue, which keep RegExp`;
  if (value instanceof Error)
    return `is ${article(name)}, which JSON stores as {}; store its message, or use superjson`;
  if (value instanceof String || value instanceof Number || value instanceof Boolean) {
    return `is ${article(name)} object; store the primitive ${tag.toLowerCase()} instead`;
  }
  return `is ${article(name)}, which JSON stores as a plain object; store one, or use superjson with registerClass`;
}

/** The name of the class whose prototype `proto` is, as messages show it. */
function nameOf(proto: unknown, fallback: string): string {
  // The descriptor, not proto.constructor: a getter there would run.
  const classFunction: unknown =
    typeof proto === "object" && proto !== null ? Object.getOwnPropertyDescriptor(proto, "constructor")?.value : null;
  const className: unknown = typeof classFunction === "function" ? classFunction.name : undefined;
  return typeof className === "string" && className !== ""
    ? className
    : fallback === "Object"
      ? "object with a custom prototype"
      : fallback;
}

// "U" counts as a consonant: a Uint8Array, a User.
const article = (name: string) => `${/^[aeio]/i.test(name) ? "an" : "a"} ${name}`;

const IDENTIFIER = /^[A-Za-z_$][\w$]*$/;

/** A path as code would write it: `value.cart.items[3]`, `value["a b"]`; long ones shortened in the middle. */
function show(path: readonly (string | number)[]): string {
  const step = (key: string | number) =>
    typeof key === "number"
      ? `[${key}]`
      : IDENTIFIER.test(key) && key.length <= 40
        ? `.${key}`
        : `[${JSON.stringify(key.length > 40 ? `${key.slice(0, 40)}…` : key)}]`;
  const steps = path.length > 12 ? [...path.slice(0, 6).map(step), "…", ...path.slice(-4).map(step)] : path.map(step);
  return `value${steps.join("")}`;
}

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

/**
 * Encodes a value before anything is sent, so a value that cannot be stored
 * is refused while the stored one is still intact.
 */
export async function encode(codec: Codec, value: unknown, context: KeyContext): Promise<string> {
  const key = context.grammyKey;
  let text: unknown;
  try {
    // The built-in codecs answer at once: no promise to wait for on every write.
    const encoded = codec.stringify(value, context);
    text = typeof encoded === "string" ? encoded : await encoded;
  } catch (error) {
    // The library's codecs name the path and the codec to use themselves; plain JSON's own errors name neither.
    throw new PostgresStorageError(
      `nothing was written: the value for key ${showKey(key)} cannot be encoded (${describe(error)})` +
        (codec === JSON ? "; superjson and devalue store more types than JSON (BigInt, Map, cycles)" : ""),
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
export async function decode(codec: Codec, text: string, context: KeyContext): Promise<unknown> {
  try {
    const decoded = codec.parse(text, context);
    return decoded instanceof Promise ? await decoded : decoded;
  } catch (error) {
    throw new PostgresStorageError(
      `the stored value for key ${showKey(context.grammyKey)} cannot be decoded (${describe(error)}); ` +
        `written with another codec or secret? The row is unchanged`,
      { cause: error },
    );
  }
}
