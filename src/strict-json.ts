/**
 * The default codec: JSON that refuses what JSON would change, written by the
 * walk that checks it.
 */
import type { Codec } from "./codec.ts";
import { DATE_TAG, MAX_DEPTH, explain, type Refusal } from "./strict-json-messages.ts";

export { DATE_TAG };

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

/** Marks a codec that stores a `Date` as `{"$date": …}`, which an in-database merge must not take for an object. */
export const TAGS_DATES: unique symbol = Symbol("tags dates");

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
  // JSON.stringify answers undefined, and encode() says to delete the session instead.
  if (value === undefined) return undefined;
  const walk: Walk = { dates, ancestors: [], refusal: undefined };
  const text = part(value, -1, walk);
  if (text !== undefined) return text;
  throw new TypeError(explain(walk.refusal ?? refuse("whole", value), dates));
}

// Number.isFinite is false for anything that is no number.
const isFiniteNumber = (value: unknown) => Number.isFinite(value);

// For every finite number, String(n) is JSON's text for it (both are Number::toString, and both write -0 as "0").

/** Characters JSON escapes in a string: quote, backslash, controls, and (when lone) surrogates. */
// deno-lint-ignore no-control-regex -- the control characters are what it looks for
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
 * The text of an element or property value at `depth`: JSON's for a string,
 * boolean, finite number or `null`, the walk's for an object; `undefined` for
 * anything else (the caller records why) or for an object that is refused
 * (with the reason in `walk.refusal`).
 */
function part(value: unknown, depth: number, walk: Walk): string | undefined {
  if (typeof value === "string") return quote(value);
  if (typeof value === "object") return value === null ? "null" : write(value, depth + 1, walk);
  if (typeof value === "boolean") return value ? "true" : "false";
  return isFiniteNumber(value) ? String(value) : undefined;
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
    // Read once, as each element is.
    const length = elements.length;
    let text = "[";
    for (let i = 0; i < length; i += 1) {
      const element = elements[i];
      const inner = part(element, depth, walk);
      if (inner === undefined) {
        walk.refusal ??= refuse(i in elements ? "element" : "hole", element);
        return within(walk, i);
      }
      text += i > 0 ? `,${inner}` : inner;
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
    if (property === undefined) continue;
    const inner = part(property, depth, walk);
    if (inner === undefined) {
      walk.refusal ??= refuse("property", property);
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
    text += written === 0 ? name + inner : `,${name}${inner}`;
    written += 1;
  }
  // One key written, and that $date: it would read back as a Date.
  if (walk.dates && written === 1 && text.startsWith(`{"${DATE_TAG}":`)) return stop(walk, refuse("tagged", value));
  return `${text}}`;
}
