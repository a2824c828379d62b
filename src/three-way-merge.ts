/**
 * The merge of a write-back: the change a handler made to the session it read
 * (base → ours), laid onto what the row holds now (theirs). Shallow, as
 * `update()` is: each top-level field of an object session is merged on its
 * own; any other value (an array, a string, a Date…) is one field.
 */
import { isFields } from "./values.ts";

/** Stands for "no row": the read found none (base), or the row was deleted or expired since (theirs). */
export const ABSENT: unique symbol = Symbol("absent");

/** A session value, or {@link ABSENT}. */
export type Side = unknown;

/** The field of a conflict about the whole value rather than one field of it. */
export const WHOLE_VALUE = "";

/** The merge of a change, with the fields that both sides changed differently. */
export interface Merged {
  /** The merged value, or {@link ABSENT} when the row should not exist. */
  readonly value: Side;
  /** Fields both sides changed to different values; {@link WHOLE_VALUE} when the values are not both objects. */
  readonly conflicts: readonly string[];
}

/**
 * Merges the change from `base` to `ours` onto `theirs`. A field only ours
 * changed takes our value (removed, when we removed it); a field only theirs
 * changed keeps theirs; a field both changed to the same value is no
 * conflict; a field both changed differently is a conflict, and takes
 * `prefer`'s value. Fields are compared by `textOf`, the codec's encoding.
 * The merged object lists our fields in our order, then fields only theirs has.
 *
 * @param prefer which side a conflicting field takes
 * @param unsure whether our change may have been stored already and theirs made on top of it: then a field that
 *   theirs holds at its base value may be one theirs changed back, and a field ours changed is a conflict unless
 *   theirs holds our value
 */
export async function mergeChange(
  base: Side,
  ours: Side,
  theirs: Side,
  prefer: "ours" | "theirs",
  textOf: (value: unknown) => string | Promise<string>,
  unsure = false,
): Promise<Merged> {
  const same = async (a: unknown, b: unknown) =>
    a === b ||
    (a !== ABSENT && b !== ABSENT && a !== undefined && b !== undefined && (await textOf(a)) === (await textOf(b)));
  const onlyOursChanged = async (b: unknown, t: unknown, o: unknown) =>
    (await same(o, t)) || (!unsure && (await same(b, t)));
  if (!(isFields(ours) && isFields(theirs) && (base === ABSENT || isFields(base)))) {
    if (await same(base, ours)) return { value: theirs, conflicts: [] };
    if (await onlyOursChanged(base, theirs, ours)) return { value: ours, conflicts: [] };
    return { value: prefer === "ours" ? ours : theirs, conflicts: [WHOLE_VALUE] };
  }
  const before: Record<string, unknown> = base === ABSENT ? {} : base;
  const field = (object: Record<string, unknown>, key: string) =>
    Object.hasOwn(object, key) && object[key] !== undefined ? object[key] : ABSENT;
  const keys = [...Object.keys(ours), ...Object.keys(theirs).filter((key) => !Object.hasOwn(ours, key))];
  const merged: [string, unknown][] = [];
  const conflicts: string[] = [];
  for (const key of keys) {
    const [b, o, t] = [field(before, key), field(ours, key), field(theirs, key)];
    let value = t;
    if (!(await same(b, o))) {
      if (await onlyOursChanged(b, t, o)) value = o;
      else {
        conflicts.push(key);
        value = prefer === "ours" ? o : t;
      }
    }
    if (value !== ABSENT) merged.push([key, value]);
  }
  // fromEntries defines properties, so a field named "__proto__" stays a field.
  return { value: Object.fromEntries(merged), conflicts };
}
