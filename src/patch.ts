/**
 * `update()`: a patch merged into the stored object, inside the database when
 * the codec allows it (one statement), otherwise here with a compare-and-set.
 */
import { decode, isMergeable, type KeyContext } from "./codec.ts";
import { MAX_SET_ATTEMPTS, attemptsLost, pauseBeforeRetry } from "./retry.ts";
import { PostgresStorageError, StatementFailure, describe, showKey } from "./errors.ts";
import type { Rows } from "./rows.ts";
import {
  checkPatch,
  decodeFromRead,
  encodePatch,
  encodeValue,
  mergeFields,
  notAnObject,
  sealed,
  setsAField,
  type Encoded,
  type ValueRules,
} from "./values.ts";
import type { WriteBacks } from "./write-backs.ts";

// PostgreSQL's JSON functions cannot read U+0000 in a string (22P05), nor a lone surrogate's escape, which the json
// column takes (22P02); the statement then did not run, and the merge is made here instead.
const UNREADABLE_JSON = new Set(["22P05", "22P02"]);

/** The fields a patch sets: those it holds with a value other than `undefined`. */
const fieldsSet = (patch: object) =>
  Object.keys(patch).filter((field) => (patch as Record<string, unknown>)[field] !== undefined);

/** What an update needs of its storage. */
export interface PatchScope<T> {
  readonly rows: Rows;
  readonly rules: ValueRules<T>;
  readonly backs: WriteBacks;
}

/**
 * Merges `patch` into the object stored under a key, as `update()` promises.
 *
 * @returns the merged value, as a read would return it
 */
export function applyPatch<T>(scope: PatchScope<T>, at: KeyContext, patch: Partial<T>): Promise<T> {
  checkPatch(patch);
  if (!setsAField(patch)) return currentFields(scope, at);
  return scope.rules.schema === undefined && isMergeable(scope.rules.codec)
    ? mergeInDatabase(scope, at, patch)
    : mergeChecked(scope, at, patch);
}

/** A patch that sets nothing: the stored object, or `{}` if the schema allows it; writes nothing. */
async function currentFields<T>({ rows, rules }: PatchScope<T>, at: KeyContext): Promise<T> {
  const { stored } = await rows.read(at);
  const current = stored === null ? undefined : await decodeFromRead(rules, at, stored);
  if (current !== undefined) return mergeFields<T>(at, current, {});
  return (await encodeValue(rules, at, {} as T)).value;
}

async function mergeInDatabase<T>(scope: PatchScope<T>, at: KeyContext, patch: Partial<T>): Promise<T> {
  let merged: string | null;
  try {
    merged = await scope.rows.merge(at, await encodePatch(scope.rules, at, patch));
  } catch (error) {
    if (error instanceof StatementFailure && UNREADABLE_JSON.has(error.code ?? ""))
      return mergeChecked(scope, at, patch);
    throw error;
  }
  if (merged === null) throw notAnObject(at);
  scope.backs.updated(at.key, merged, merged, fieldsSet(patch));
  try {
    return (await decode(scope.rules.codec, merged, at)) as T;
  } catch (error) {
    // Stored already: not the refusal of a row left unchanged that decode() reports.
    throw new PostgresStorageError(
      `update() stored its merge under key ${showKey(at.grammyKey)}, but the codec cannot decode the merged value ` +
        `(${describe(error instanceof PostgresStorageError ? error.cause : error)}); a mergeable codec must parse the JSON objects it writes, merged`,
      { cause: error, inDoubt: true },
    );
  }
}

/** Merges here and stores the result only if the row still holds what it merged into; again when another writer came first. */
async function mergeChecked<T>({ rows, rules, backs }: PatchScope<T>, at: KeyContext, patch: Partial<T>): Promise<T> {
  // `known`: the stored text this merge builds on; null when there is no row, undefined when it must be read.
  let known = backs.latest(at.key);
  let guessed = known !== undefined;
  for (let attempt = 1; ; attempt += 1) {
    known ??= (await rows.read(at)).stored;
    let next: Encoded<T>;
    try {
      const previous = known === null ? undefined : await decodeFromRead(rules, at, known);
      // A stored null is no object to merge into, as in the database; only no session is.
      next = await encodeValue(rules, at, mergeFields<T>(at, previous === undefined ? {} : previous, patch));
    } catch (error) {
      if (!guessed) throw error;
      // Refused on a guess of the row (another writer may have replaced a value that is no object, say): read it.
      guessed = false;
      known = undefined;
      attempt -= 1;
      continue;
    }
    guessed = false;
    const stored = await sealed(rules, at, next.plain);
    if (await rows.replaceIf(at, stored, known, { once: true })) {
      backs.updated(at.key, stored, next.plain, fieldsSet(patch));
      return next.value;
    }
    if (attempt >= MAX_SET_ATTEMPTS) throw attemptsLost("update", at);
    known = undefined;
    await pauseBeforeRetry(attempt);
  }
}
