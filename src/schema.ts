import { StorageOptionError } from "./errors.ts";

/**
 * The part of the Standard Schema interface (https://standardschema.dev) the
 * storage calls. zod, valibot, arktype and others implement it, so any of
 * them can check session values without this library depending on one.
 *
 * @typeParam Output the type a valid value has after parsing (transforms and defaults applied)
 */
export interface StandardSchema<Output = unknown> {
  /** The schema's Standard Schema interface. */
  readonly "~standard": {
    /** Checks a value; may be asynchronous. */
    readonly validate: (value: unknown) => StandardResult<Output> | Promise<StandardResult<Output>>;
    /** Carries the schema's types for inference only. */
    readonly types?: { readonly input: unknown; readonly output: Output } | undefined;
  };
}

/** What a Standard Schema answers: the parsed value, or the issues found. */
export type StandardResult<Output> =
  | { readonly value: Output; readonly issues?: undefined }
  | { readonly issues: ReadonlyArray<StandardIssue> };

/** One problem a schema found in a value. */
export interface StandardIssue {
  /** What is wrong, in the schema library's words. */
  readonly message: string;
  /** Where in the value, as property keys (or `{ key }` segments). */
  readonly path?: ReadonlyArray<PropertyKey | { readonly key: PropertyKey }> | undefined;
}

/** The parsed type of a Standard Schema. */
export type InferOutput<S> = S extends StandardSchema<infer Output> ? Output : never;

/**
 * Checks the `schema` option.
 *
 * @throws StorageOptionError when it is given and is no Standard Schema
 */
export function checkSchema<T>(schema: StandardSchema<T> | undefined): StandardSchema<T> | undefined {
  if (schema !== undefined && typeof schema?.["~standard"]?.validate !== "function") {
    throw new StorageOptionError("schema", "schema must be a Standard Schema (zod, valibot, arktype…)");
  }
  return schema;
}

/**
 * Runs a schema on a value; answers the parsed value or the issues, as the
 * schema does: at once, or as a promise when it validates asynchronously.
 * Callers await it, so no extra promise is made for a synchronous schema.
 */
export function runSchema<T>(
  schema: StandardSchema<T>,
  value: unknown,
): StandardResult<T> | Promise<StandardResult<T>> {
  return schema["~standard"].validate(value);
}

/** Issues as one readable line: `name: Required; age: Too small`. */
export function formatIssues(issues: ReadonlyArray<StandardIssue>): string {
  return issues
    .map((issue) => {
      const path = (issue.path ?? [])
        .map((segment) => String(typeof segment === "object" ? segment.key : segment))
        .join(".");
      return path === "" ? issue.message : `${path}: ${issue.message}`;
    })
    .join("; ");
}
