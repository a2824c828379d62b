/**
 * Applies a write-back as the change from what was read onto what the row
 * holds now: a compare-and-set against the text read (one statement when
 * nothing else wrote the key meanwhile), and on a mismatch a field-by-field
 * merge onto the row as it is, set again until it holds.
 */
import { decode, encode, type KeyContext } from "./codec.ts";
import { StorageConflictError, StorageOptionError } from "./errors.ts";
import { afterLostTry } from "./failure.ts";
import type { WriteOutcome } from "./observe.ts";
import { attemptsLost, pauseBeforeRetry, MAX_SET_ATTEMPTS } from "./retry.ts";
import type { Doubt } from "./driver/run-options.ts";
import type { Found, Rows } from "./rows.ts";
import { ABSENT, mergeChange, type Side } from "./three-way-merge.ts";
import {
  decodePlain,
  encodeValue,
  isFields,
  readSession,
  schemaIssues,
  sealed,
  type Encoded,
  type ValueRules,
} from "./values.ts";
import type { Base, WriteBacks } from "./write-backs.ts";

/** What a conflict resolver is told besides the three values. */
export interface WriteConflict {
  /** The grammY session key. */
  readonly key: string;
  /**
   * The top-level fields both sides changed to different values; `[""]` when
   * the values are not both objects (or the row was deleted meanwhile), `[]`
   * when the field-by-field merge fails the schema.
   */
  readonly fields: readonly string[];
}

/**
 * Decides a conflict of a write-back: `base` is the session as the handler
 * read it (`undefined`: there was none), `ours` what the handler wrote back,
 * `theirs` what the row holds now (`undefined`: deleted, or expired after
 * another writer's change; a row that only expired since the read is stored
 * without asking). Answers
 * the value to store (checked against the schema), or `undefined` to leave
 * the row as it is.
 */
export type ConflictResolver<T> = (
  base: T | undefined,
  ours: T,
  theirs: T | undefined,
  conflict: WriteConflict,
) => T | undefined | PromiseLike<T | undefined>;

/**
 * What a write-back does with a field that both it and another writer changed
 * since its read: `"ours"` (the default) takes the write-back's value,
 * `"theirs"` keeps the row's, `"throw"` rejects with a `StorageConflictError`
 * and writes nothing, and a function decides.
 */
export type OnConflict<T> = "ours" | "theirs" | "throw" | ConflictResolver<T>;

/**
 * Checks the `onConflict` option.
 *
 * @throws StorageOptionError when it is none of the above
 */
export function checkOnConflict<T>(option: OnConflict<T> = "ours"): OnConflict<T> {
  if (option === "ours" || option === "theirs" || option === "throw" || typeof option === "function") return option;
  throw new StorageOptionError("onConflict", 'onConflict must be "ours", "theirs", "throw" or a function');
}

/**
 * Checks the `writeBacks` option; answers whether write-backs merge.
 *
 * @throws StorageOptionError when it is neither `"merge"` nor `"overwrite"`
 */
export function mergesWriteBacks(option: "merge" | "overwrite" | undefined): boolean {
  if (option === undefined || option === "merge" || option === "overwrite") return option !== "overwrite";
  throw new StorageOptionError("writeBacks", 'writeBacks must be "merge" or "overwrite"');
}

/** What a write-back needs of its storage. */
export interface WriteBackScope<T> {
  readonly rows: Rows;
  readonly rules: ValueRules<T>;
  readonly backs: WriteBacks;
  readonly onConflict: OnConflict<T>;
  /**
   * How long after a write its row may be written back unchanged without a statement: a write renews the expiry, and
   * the row needs renewing again once half its time to live has passed.
   */
  readonly quietMs: number;
}

/** The row as a merge sees it. */
interface Theirs {
  readonly stored: string | null;
  readonly plain: string | null;
  /** The decoded value, or {@link ABSENT} for no row (or one `onInvalid` discards). */
  readonly value: Side;
}

/**
 * Applies the write-back of `value` (encoded as `ours`), read as `base`.
 *
 * @throws StorageConflictError when `onConflict` is `"throw"` and a field conflicts
 * @throws PostgresStorageError when it keeps losing to other writers, or a statement fails
 */
export async function applyWriteBack<T>(
  scope: WriteBackScope<T>,
  at: KeyContext,
  base: Base,
  value: T,
  ours: Encoded<T>,
): Promise<void> {
  const { rows, rules, backs } = scope;
  let theirs: Theirs | undefined;
  // The row as this storage left it, when that is not the object's base: this storage changed it since the read
  // (an update() in the handler, say), or its last write of this object was a merge. Merge onto it at once rather
  // than first sending a compare-and-set that would fail; it is only a guess, which every set checks.
  const latest = backs.latest(at.key) ?? (base.merged ? base.stored : undefined);
  if (latest !== undefined && (latest !== base.stored || base.merged)) {
    theirs = await decodeTheirs(rules, at, latest).catch(() => undefined); // a guess that fails to decode is no guess
  }
  let guessed = theirs !== undefined;
  // Whether a set of ours whose answer was lost may have been stored, and then overwritten by another writer.
  const doubt: Doubt = { earlierTryMayHaveApplied: false };
  try {
    for (let attempt = 1; ; attempt += 1) {
      let target: Encoded<T> | undefined = ours;
      let sent: string | undefined;
      if (theirs !== undefined) {
        let resolved = await resolve(scope, at, base, ours, theirs, doubt.earlierTryMayHaveApplied, guessed);
        if (resolved === UNCONFIRMED) {
          // A conflict is decided (thrown, or put to onConflict's function) only on the row as it is, never on a guess.
          theirs = await decodeTheirs(rules, at, (await rows.read(at)).stored);
          guessed = false;
          resolved = await resolve(scope, at, base, ours, theirs, doubt.earlierTryMayHaveApplied, false);
        }
        target = resolved as Encoded<T> | undefined;
        if (target === undefined || target.plain === theirs.plain) {
          // Nothing of ours to apply: the row stays as the other writer left it, once the guess is checked (the set
          // of the same text renews its expiry too). A guess of no row cannot be checked so: the row is read.
          const checkedAt = backs.now();
          const check = { expiredToo: true };
          if (!guessed || (theirs.stored !== null && (await rows.replaceIf(at, theirs.stored, theirs.stored, check)))) {
            // A further write of this object applies its change onto the row as it is now, as after a merge.
            const merged = theirs.plain !== ours.plain;
            const quietUntil =
              theirs.stored === null
                ? Number.POSITIVE_INFINITY
                : guessed
                  ? checkedAt + scope.quietMs
                  : expiryUnknown(scope);
            backs.wrote(value, { key: at.key, stored: theirs.stored, plain: ours.plain, quietUntil, merged });
            outcome(at, "kept theirs");
            return;
          }
          target = undefined;
        }
      }
      if (target !== undefined) {
        let stored = sealed(rules, at, target.plain);
        if (typeof stored !== "string") stored = await stored; // a promise only when the codec encrypts or compresses
        const sentAt = backs.now();
        // Against the text read, or the one this storage left, a row that expired meanwhile (and that prune() has not
        // deleted) is the session read, not another writer's deletion: it is set, as an unchanged one is renewed.
        const expected = theirs === undefined ? base.stored : theirs.stored;
        if (await rows.replaceIf(at, stored, expected, { doubt, expiredToo: theirs === undefined || guessed })) {
          const merged = target.plain !== ours.plain;
          backs.wrote(value, { key: at.key, stored, plain: ours.plain, quietUntil: sentAt + scope.quietMs, merged });
          outcome(at, theirs === undefined ? "set" : "merged");
          return;
        }
        sent = stored;
      }
      if (attempt >= MAX_SET_ATTEMPTS) throw attemptsLost("write", at, doubt.earlierTryMayHaveApplied);
      await pauseBeforeRetry(attempt);
      const found = (await rows.read(at)).stored;
      if (found !== null && found === sent) {
        // A try whose answer was lost applied, and the retried set then found its own text: it is written.
        const quietUntil = expiryUnknown(scope);
        backs.wrote(value, { key: at.key, stored: found, plain: ours.plain, quietUntil, merged: target !== ours });
        outcome(at, theirs === undefined ? "set" : "merged");
        return;
      }
      theirs = await decodeTheirs(rules, at, found);
      guessed = false;
    }
  } catch (error) {
    throw doubt.earlierTryMayHaveApplied ? afterLostTry(error) : error;
  }
}

/**
 * Renews the expiry of a row written back unchanged, if it still holds what was read; one read with another secret
 * of the codec than the one it writes with is stored again under that one.
 */
export async function renew<T>(scope: WriteBackScope<T>, at: KeyContext, base: Base, value: T): Promise<void> {
  // When the row is known to hold another text (this storage's own update() or write changed it, or a later read saw
  // another writer's change), whoever wrote it renewed it since the read, and a renewal of the text read finds nothing.
  // A later read that found no row renewed nothing: the row may have expired, and is renewed if it still holds it.
  const latest = scope.backs.latest(at.key);
  if (base.stored === null || (typeof latest === "string" && latest !== base.stored)) return outcome(at, "unchanged");
  const sentAt = scope.backs.now();
  // The stored plain text, not the schema's output of it: what another version's schema wrote stays.
  const stored = base.resealFrom === undefined ? base.stored : await sealed(scope.rules, at, base.resealFrom);
  // When the set fails, another writer wrote the row since (renewing it) or deleted it: nothing to apply either way.
  // It renews a row that expired while the handler ran too, as long as prune() has not deleted it.
  if (await scope.rows.replaceIf(at, stored, base.stored, { expiredToo: true })) {
    scope.backs.wrote(value, { ...base, stored, resealFrom: undefined, quietUntil: sentAt + scope.quietMs });
    outcome(at, "renewed");
  } else {
    outcome(at, "unchanged");
  }
}

/**
 * The quiet time of a row whose expiry this storage did not just set (another writer's, or a set whose answer was
 * lost): with a TTL, none, so that the next unchanged write-back renews it; without, forever.
 */
const expiryUnknown = ({ quietMs }: { readonly quietMs: number }) =>
  quietMs === Number.POSITIVE_INFINITY ? quietMs : -1;

/**
 * The base of a write-back whose read found no row: none, but for the fields this storage's `update()` set since,
 * whose values in ours are `initial()`'s (grammY writes its object back), not changes the handler made.
 */
function initialValues(base: Base, ours: unknown): Side {
  const fields = base.updatedFields;
  if (fields === undefined || !isFields(ours)) return ABSENT;
  return Object.fromEntries(fields.filter((field) => Object.hasOwn(ours, field)).map((field) => [field, ours[field]]));
}

/** Records how the write was applied, when the storage is observed. */
function outcome(at: KeyContext, write: WriteOutcome): void {
  if (at.trace !== undefined) at.trace.write = write;
}

async function decodeTheirs<T>(rules: ValueRules<T>, at: KeyContext, stored: Found["stored"]): Promise<Theirs> {
  const { value, seen } = await readSession(rules, at, stored);
  return { stored, plain: seen, value: value === undefined ? ABSENT : value };
}

/** What {@link resolve} answers when it would decide a conflict on a guess of the row: read the row first. */
const UNCONFIRMED: unique symbol = Symbol("unconfirmed");

/**
 * What to store after a conflict: the merge, decided by `onConflict`; `undefined` to leave the row alone.
 *
 * @param unsure whether a try of ours whose answer was lost may have been stored before the row became `theirs`
 * @param guessed whether `theirs` is this storage's guess of the row, not yet checked by a statement
 */
async function resolve<T>(
  scope: WriteBackScope<T>,
  at: KeyContext,
  base: Base,
  ours: Encoded<T>,
  theirs: Theirs,
  unsure: boolean,
  guessed: boolean,
): Promise<Encoded<T> | undefined | typeof UNCONFIRMED> {
  const { rules, onConflict } = scope;
  const plainCodec = rules.stack.plain;
  // The base as the handler saw it, through the schema (its transforms, as ours and theirs): its text holds what the
  // schema drew at the read (a default's random id), which the schema keeps; one it refuses is decoded as it is.
  const baseText = base.repaired ?? base.plain;
  const baseValue: Side =
    baseText === null
      ? initialValues(base, ours.value)
      : ((await Promise.resolve()
          .then(() => decodePlain(rules, at, baseText))
          .catch(() => decode(plainCodec, baseText, at))) ?? ABSENT);
  const prefer = onConflict === "theirs" ? "theirs" : "ours";
  const textOf = (field: unknown) => encode(plainCodec, field, at);
  const merged = await mergeChange(baseValue, ours.value, theirs.value, prefer, textOf, unsure);
  const decide = async (fields: readonly string[]): Promise<Encoded<T> | undefined | typeof UNCONFIRMED> => {
    if (onConflict === "ours") return ours;
    if (onConflict === "theirs") return undefined;
    if (guessed) return UNCONFIRMED;
    if (onConflict === "throw") throw new StorageConflictError(at.grammyKey, fields);
    const chosen = await onConflict(
      // A read that found no row has no base to tell, whatever the merge took from initialValues().
      (baseValue === ABSENT || base.plain === null ? undefined : baseValue) as T | undefined,
      ours.value,
      (theirs.value === ABSENT ? undefined : theirs.value) as T | undefined,
      { key: at.grammyKey, fields },
    );
    return chosen === undefined ? undefined : encodeValue(rules, at, chosen);
  };
  if (merged.conflicts.length > 0 && (onConflict === "throw" || typeof onConflict === "function")) {
    return decide(merged.conflicts);
  }
  if (merged.value === ABSENT) return undefined;
  // A merge of two valid values can still fail the schema (fields that must agree): then the rule decides the whole
  // value. Checked even when writes are not: neither side wrote this value, the storage made it.
  if ((await schemaIssues(rules, merged.value)) !== undefined) return decide(merged.conflicts);
  return encodeValue(rules, at, merged.value as T);
}
