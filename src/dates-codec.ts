import { DATE_TAG, TAGS_DATES, toStrictJson, type Codec } from "./codec.ts";

function isTagged(value: unknown): value is Record<typeof DATE_TAG, unknown> {
  return (
    typeof value === "object" &&
    value !== null &&
    !Array.isArray(value) &&
    Object.keys(value).length === 1 &&
    DATE_TAG in value
  );
}

/**
 * JSON that keeps `Date`s: each is stored as `{"$date": "<ISO 8601>"}` and
 * read back as a `Date`, so no ordinary string is ever mistaken for a date.
 * Objects stay JSON objects with the same keys, so `update()` works with it.
 * Everything else the default codec refuses it refuses too (an invalid `Date`,
 * `Map`, `NaN`, functions, cycles…), and also an object of your own whose only
 * key is `$date`, which would read back as a `Date`.
 */
export const jsonWithDates: Codec = {
  mergeable: true,
  // A computed key escapes the object literal's excess property check: the mark is internal, not part of Codec.
  ...{ [TAGS_DATES]: true },
  stringify(value) {
    // The default codec's walk, which writes each Date as {"$date": …} as it goes.
    return toStrictJson(value, true) as string;
  },
  parse(text) {
    return JSON.parse(text, (_key, value: unknown) =>
      isTagged(value) && typeof value[DATE_TAG] === "string" ? new Date(value[DATE_TAG]) : value,
    );
  },
};
