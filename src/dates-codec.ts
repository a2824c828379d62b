import type { Codec } from "./codec.js";

const DATE_TAG = "$date";

/**
 * JSON that keeps `Date`s: each is stored as `{"$date": "<ISO 8601>"}` and
 * read back as a `Date`, so no ordinary string is ever mistaken for a date.
 * Objects stay JSON objects with the same keys, so `update()` works with it.
 * An invalid `Date` is refused on write.
 */
export const jsonWithDates: Codec = {
  mergeable: true,
  stringify(value) {
    return JSON.stringify(value, function (this: Record<string, unknown>, key, replaced: unknown) {
      // JSON.stringify has already called Date#toJSON; the holder still has the Date.
      const original = this[key];
      return original instanceof Date ? { [DATE_TAG]: original.toISOString() } : replaced;
    });
  },
  parse(text) {
    return JSON.parse(text, (_key, value: unknown) => {
      if (typeof value === "object" && value !== null && !Array.isArray(value)) {
        const keys = Object.keys(value);
        const tagged = (value as Record<string, unknown>)[DATE_TAG];
        if (keys.length === 1 && typeof tagged === "string") return new Date(tagged);
      }
      return value;
    });
  },
};
