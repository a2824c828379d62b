import { decode, encode, isMergeable, type Codec } from "./codec.js";
import { PostgresStorageError, StorageValidationError, showKey } from "./errors.js";
import { formatIssues, runSchema, type StandardIssue, type StandardSchema } from "./schema.js";

/** A stored value that failed the schema, as `onInvalid` receives it. */
export interface InvalidValue {
  /** The grammY session key. */
  readonly key: string;
  /** The stored value, decoded but not parsed. */
  readonly value: unknown;
  /** What the schema found wrong. */
  readonly issues: ReadonlyArray<StandardIssue>;
}

/**
 * What to do with a stored value that fails the schema: `"throw"` a
 * `StorageValidationError`, `"discard"` it (read as missing, so grammY starts
 * afresh), or repair it with a function whose result is checked again.
 */
export type OnInvalid<T> = "throw" | "discard" | ((invalid: InvalidValue) => T | undefined | PromiseLike<T | undefined>);

/** How values travel between grammY and the value column. */
export interface ValueRules<T> {
  readonly codec: Codec;
  readonly schema: StandardSchema<T> | undefined;
  readonly onInvalid: OnInvalid<T>;
  readonly validateOnWrite: boolean;
}

/**
 * Checks and encodes a value for writing; throws before anything is sent.
 * Answers the value as the schema parsed it, and its text.
 */
export async function encodeForWrite<T>(rules: ValueRules<T>, key: string, value: T): Promise<{ value: T; text: string }> {
  let checked = value;
  if (rules.schema !== undefined && rules.validateOnWrite) {
    const result = await runSchema(rules.schema, value);
    if (result.issues !== undefined) {
      throw new StorageValidationError(
        `nothing was written: the value for key ${showKey(key)} fails the schema: ${formatIssues(result.issues)}`,
        key,
        result.issues,
      );
    }
    checked = result.value;
  }
  return { value: checked, text: await encode(rules.codec, checked, key) };
}

/** Decodes and checks a stored value; `undefined` means "read it as missing". */
export async function decodeFromRead<T>(rules: ValueRules<T>, key: string, text: string): Promise<T | undefined> {
  const value = await decode(rules.codec, text, key);
  if (rules.schema === undefined) return value as T;
  const result = await runSchema(rules.schema, value);
  if (result.issues === undefined) return result.value;
  const { onInvalid } = rules;
  if (onInvalid === "discard") return undefined;
  if (onInvalid === "throw") {
    throw new StorageValidationError(
      `the stored value for key ${showKey(key)} fails the schema: ${formatIssues(result.issues)}; ` +
        `onInvalid can discard or repair such values`,
      key,
      result.issues,
    );
  }
  const repaired = await onInvalid({ key, value, issues: result.issues });
  if (repaired === undefined) return undefined;
  const again = await runSchema(rules.schema, repaired);
  if (again.issues !== undefined) {
    throw new StorageValidationError(
      `onInvalid's repair of key ${showKey(key)} still fails the schema: ${formatIssues(again.issues)}`,
      key,
      again.issues,
    );
  }
  return again.value;
}

/** Encodes an `update()` patch (already checked to be an object) for merging in the database; the codec must be mergeable. */
export async function encodePatch<T>(rules: ValueRules<T>, key: string, patch: unknown): Promise<string> {
  if (!isMergeable(rules.codec)) {
    throw new PostgresStorageError(
      "update() merges JSON objects, so it needs a codec that keeps them as they are (the default, JSON, jsonWithDates, " +
        "or one marked mergeable: true); with this codec, read and write instead",
    );
  }
  const text = await encode(rules.codec, patch, key);
  if (!text.startsWith("{")) {
    throw new PostgresStorageError(
      `nothing was written: the codec marked mergeable encoded the patch for key ${showKey(key)} as something other than a JSON object; drop mergeable: true from it`,
    );
  }
  return text;
}

/** Refuses an `update()` patch that is not an object of fields. */
export function checkPatch(patch: unknown): void {
  if (typeof patch !== "object" || patch === null || Array.isArray(patch)) {
    throw new PostgresStorageError(`update() takes an object of fields, got ${Array.isArray(patch) ? "an array" : String(patch)}`);
  }
}

/** Decodes and checks the value `update()` produced; the issues when it fails the schema. */
export async function decodeMerged<T>(
  rules: ValueRules<T>,
  key: string,
  text: string,
): Promise<{ readonly value: T; readonly issues?: undefined } | { readonly issues: ReadonlyArray<StandardIssue> }> {
  const value = await decode(rules.codec, text, key);
  if (rules.schema === undefined) return { value: value as T };
  return runSchema(rules.schema, value);
}
