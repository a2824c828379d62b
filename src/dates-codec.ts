import { refuseLossy, type Codec } from "./codec.js";

const DATE_TAG = "$date";

function isTagged(value: unknown): value is Record<typeof DATE_TAG, unknown> {
  return typeof value === "object" && value !== null && !Array.isArray(value) && Object.keys(value).length === 1 && DATE_TAG in value;
}

/**
 * JSON that keeps `Date`s: each is stored as `{"$date": "<ISO 8601>"}` and
 * read back as a `Date`, so no ordinary string is ever mistaken for a date.
 * Objects stay JSON objects with the same keys, so `update()` works with it.
 * Like the default codec it refuses what JSON would silently change (NaN,
 * Infinity, functions, an invalid `Date`), and an object of your own whose
 * only key is `$date`, which would read back as a `Date`.
 */
export const jsonWithDates: Codec = {
  mergeable: true,
  stringify(value) {
    return JSON.stringify(value, function (this: Record<string, unknown>, key, replaced: unknown) {
      // JSON.stringify has already called Date#toJSON; the holder still has the Date.
      const original = this[key];
      if (original instanceof Date && !Number.isNaN(original.getTime())) return { [DATE_TAG]: original.toISOString() };
      if (isTagged(replaced)) throw new TypeError('an object whose only key is "$date" would read back as a Date; rename the key');
      return refuseLossy.call(this, key, replaced);
    });
  },
  parse(text) {
    return JSON.parse(text, (_key, value: unknown) => (isTagged(value) && typeof value[DATE_TAG] === "string" ? new Date(value[DATE_TAG]) : value));
  },
};
