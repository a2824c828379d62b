import { checkCodec, decode, encode, strictJson, type Codec, type KeyContext } from "./codec.ts";
import { kindOf } from "./strict-json-messages.ts";
import { seal, stackOf, unseal, type CodecStack } from "./codec-layers.ts";
import { PostgresStorageError, StorageOptionError, StorageValidationError, showKey } from "./errors.ts";
import type { PostgresStorageOptions } from "./options.ts";
import { checkSchema, formatIssues, runSchema, type StandardIssue, type StandardSchema } from "./schema.ts";

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
export type OnInvalid<T> =
  | "throw"
  | "discard"
  | ((invalid: InvalidValue) => T | undefined | PromiseLike<T | undefined>);

/** How values travel between grammY and the value column. */
export interface ValueRules<T> {
  readonly codec: Codec;
  /** The codec taken apart: sessions are compared and merged on its plain text. */
  readonly stack: CodecStack;
  readonly schema: StandardSchema<T> | undefined;
  readonly onInvalid: OnInvalid<T>;
  readonly validateOnWrite: boolean;
}

/** The storage options {@link valueRules} reads. */
type ValueOptions<T> = Pick<PostgresStorageOptions<T>, "codec" | "schema" | "onInvalid" | "validateOnWrite">;

/**
 * The value rules of a storage's options, checked, with their defaults.
 *
 * @throws StorageOptionError when the codec, schema or onInvalid is of the wrong kind
 */
export function valueRules<T>({
  codec = strictJson,
  schema,
  onInvalid = "throw",
  validateOnWrite = true,
}: ValueOptions<T>): ValueRules<T> {
  if (onInvalid !== "throw" && onInvalid !== "discard" && typeof onInvalid !== "function") {
    throw new StorageOptionError("onInvalid", 'onInvalid must be "throw", "discard" or a function');
  }
  const checked = checkCodec(codec);
  return { codec: checked, stack: stackOf(checked), schema: checkSchema(schema), onInvalid, validateOnWrite };
}

/** A session checked and encoded for writing: the value as the schema parsed it, and its plain text. */
export interface Encoded<T> {
  readonly value: T;
  /** The plain codec's text (before any encryption or compression). */
  readonly plain: string;
}

/**
 * Checks a value and encodes it with the plain codec; throws before anything
 * is sent. {@link sealed} turns the plain text into the stored text.
 */
export function encodeValue<T>(rules: ValueRules<T>, at: KeyContext, value: T): Encoded<T> | Promise<Encoded<T>> {
  if (rules.schema !== undefined && rules.validateOnWrite) return checkedEncoded(rules, rules.schema, at, value);
  // Without a schema, a codec that answers at once is answered without a promise per write.
  const plain = encode(rules.stack.plain, value, at);
  return typeof plain === "string" ? { value, plain } : plain.then((text) => ({ value, plain: text }));
}

/** {@link encodeValue} with a schema that checks writes: the value as the schema parses it, then encoded. */
async function checkedEncoded<T>(
  rules: ValueRules<T>,
  schema: StandardSchema<T>,
  at: KeyContext,
  value: T,
): Promise<Encoded<T>> {
  const result = await runSchema(schema, value);
  if (result.issues !== undefined) throw invalid("nothing was written: the value", at.grammyKey, result.issues);
  return { value: result.value, plain: await encode(rules.stack.plain, result.value, at) };
}

/** The stored text of a plain text (the same text unless the codec encrypts or compresses). */
export function sealed<T>(rules: ValueRules<T>, at: KeyContext, plain: string): string | Promise<string> {
  return rules.stack.layers.length === 0 ? plain : seal(rules.stack, plain, at);
}

/** The plain text of a stored text (the same text unless the codec encrypts or compresses). */
export function unsealed<T>(rules: ValueRules<T>, at: KeyContext, stored: string): string | Promise<string> {
  return rules.stack.layers.length === 0 ? stored : unseal(rules.stack, stored, at);
}

/** A stored text as a read hands it out. */
export interface ReadSession<T> {
  /** The session; `undefined` for none (no row, or one `onInvalid` discards). */
  readonly value: T | undefined;
  /**
   * The plain text a write-back of the session is compared with: with a schema, the text of what the schema made of
   * it (defaults filled, unknown fields stripped, fields in its order), so that a session written back unchanged is
   * seen as unchanged; the stored plain text when `onInvalid` repaired it (so that its write-back stores the repair)
   * or that cannot be encoded. `null` for no session.
   */
  readonly seen: string | null;
  /** The stored plain text, when a codec layer read it with another secret than the one it writes with. */
  readonly resealFrom?: string | undefined;
  /** The plain text of the session `onInvalid` repaired: what a merge builds on, without running the repair again. */
  readonly repaired?: string | undefined;
}

const NO_SESSION: ReadSession<never> = { value: undefined, seen: null };

/**
 * Decodes and checks a stored text (`null`: no row) as a read hands it out. Without codec layers or a schema, a
 * synchronous codec's session is answered without a promise.
 */
export function readSession<T>(
  rules: ValueRules<T>,
  at: KeyContext,
  stored: string | null,
): ReadSession<T> | Promise<ReadSession<T>> {
  if (stored === null) return NO_SESSION;
  if (rules.stack.layers.length > 0 || rules.schema !== undefined) return checkedSession(rules, at, stored);
  const value = decode(rules.stack.plain, stored, at) as T | Promise<T>;
  return value instanceof Promise ? value.then((found) => session(found, stored)) : session(value, stored);
}

const session = <T>(value: T | undefined, seen: string): ReadSession<T> =>
  value === undefined ? NO_SESSION : { value, seen };

async function checkedSession<T>(rules: ValueRules<T>, at: KeyContext, stored: string): Promise<ReadSession<T>> {
  const plain = await unsealed(rules, at, stored);
  const resealFrom = at.readWithOtherSecret ? plain : undefined;
  if (rules.schema === undefined) {
    return { ...session((await decode(rules.stack.plain, plain, at)) as T | undefined, plain), resealFrom };
  }
  const { value, repaired } = await checkedPlain(rules, rules.schema, at, plain);
  if (value === undefined) return NO_SESSION;
  let text: string | undefined;
  try {
    text = await encode(rules.stack.plain, value, at);
  } catch {
    // A schema's output the codec cannot encode: compared with the stored text, as its write-back fails anyway.
  }
  return repaired ? { value, seen: plain, resealFrom, repaired: text } : { value, seen: text ?? plain, resealFrom };
}

/** Decodes and checks a stored value; `undefined` means "read it as missing". */
export async function decodeFromRead<T>(rules: ValueRules<T>, at: KeyContext, stored: string): Promise<T | undefined> {
  return decodePlain(rules, at, await unsealed(rules, at, stored));
}

/** Decodes and checks a plain text; `undefined` means "read it as missing". */
export async function decodePlain<T>(rules: ValueRules<T>, at: KeyContext, plain: string): Promise<T | undefined> {
  if (rules.schema === undefined) return (await decode(rules.stack.plain, plain, at)) as T;
  return (await checkedPlain(rules, rules.schema, at, plain)).value;
}

/** A plain text decoded and checked by the schema; `repaired` when `onInvalid`'s function made the value. */
async function checkedPlain<T>(
  rules: ValueRules<T>,
  schema: StandardSchema<T>,
  at: KeyContext,
  plain: string,
): Promise<{ value: T | undefined; repaired: boolean }> {
  const value = await decode(rules.stack.plain, plain, at);
  const result = await runSchema(schema, value);
  if (result.issues === undefined) return { value: result.value, repaired: false };
  const { onInvalid } = rules;
  const key = at.grammyKey;
  if (onInvalid === "discard") return { value: undefined, repaired: false };
  if (onInvalid === "throw") {
    throw invalid("the stored value", key, result.issues, "; onInvalid can discard or repair such values");
  }
  const repaired = await onInvalid({ key, value, issues: result.issues });
  if (repaired === undefined) return { value: undefined, repaired: false };
  const again = await runSchema(schema, repaired);
  if (again.issues !== undefined) throw invalid("onInvalid's repair of the value", key, again.issues);
  return { value: again.value, repaired: true };
}

/** The error of a value that fails the schema: `what` it is, then under which key, the issues and `hint`. */
const invalid = (what: string, key: string, issues: readonly StandardIssue[], hint = "") =>
  new StorageValidationError(
    `${what} for key ${showKey(key)} fails the schema: ${formatIssues(issues)}${hint}`,
    key,
    issues,
  );

/**
 * Checks a value against the schema, whatever `validateOnWrite` says; answers its issues, or `undefined` when it
 * passes or there is no schema.
 */
export async function schemaIssues<T>(
  rules: ValueRules<T>,
  value: unknown,
): Promise<readonly StandardIssue[] | undefined> {
  if (rules.schema === undefined) return undefined;
  return (await runSchema(rules.schema, value)).issues;
}

/** Encodes an `update()` patch (already checked to be an object) for merging in the database; the codec is mergeable. */
export async function encodePatch<T>(rules: ValueRules<T>, at: KeyContext, patch: unknown): Promise<string> {
  const text = await encode(rules.codec, patch, at);
  if (!text.startsWith("{")) {
    throw new StorageOptionError(
      "codec",
      `nothing was written: the mergeable codec encoded the patch for key ${showKey(at.grammyKey)} as no JSON object; drop mergeable: true`,
    );
  }
  return text;
}

/** Refuses an `update()` patch that is not an object of fields. */
export function checkPatch(patch: unknown): void {
  if (!isFields(patch)) {
    throw new StorageOptionError(
      "patch",
      `update() takes a plain object of fields, got ${typeof patch === "object" && patch !== null ? kindOf(patch) : String(patch)}; ` +
        "write() other values whole, with a codec that keeps them",
    );
  }
}

/** Whether a value is a plain object of fields (not an array, a Map, a Date or another class's instance). */
export function isFields(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const proto: unknown = Object.getPrototypeOf(value);
  return proto === Object.prototype || proto === null;
}

/** Whether an `update()` patch sets any field: fields set to `undefined` are left as they are. */
export function setsAField(patch: object): boolean {
  return Object.values(patch).some((value) => value !== undefined);
}

/**
 * The stored object with the fields `patch` sets laid over it (shallow, as
 * `{ ...stored, ...patch }` without the patch's `undefined` fields).
 *
 * @throws PostgresStorageError when the stored value is not an object
 */
export function mergeFields<T>(at: KeyContext, stored: unknown, patch: object): T {
  if (!isFields(stored)) throw notAnObject(at);
  // fromEntries defines properties, so a field named "__proto__" stays a field.
  return Object.fromEntries([
    ...Object.entries(stored),
    ...Object.entries(patch).filter(([, value]) => value !== undefined),
  ]) as T;
}

/** The error of `update()` on a stored value that is not an object. */
export function notAnObject(at: KeyContext): PostgresStorageError {
  return new PostgresStorageError(
    `nothing was changed: update() merges into objects, and the value under key ${showKey(at.grammyKey)} is not one; write() it instead`,
  );
}
