import { z } from "zod";

const Name = z.string().min(1).max(64);
const Age = z.number().int().min(1).max(150);

/**
 * Rows written before the form kept its answers in `draft` had a form in
 * progress in `name` and `age` (with `confirmed: false`); they are read as a
 * draft, so a form begun before a deploy goes on where it stopped. Anything
 * else is left as it is, so the schema accepts its own output.
 */
function withDraft(value: unknown): unknown {
  if (typeof value !== "object" || value === null || "draft" in value) return value;
  const { step, name, age, confirmed, ...rest } = value as Record<string, unknown>;
  if (step === "idle" || step === undefined || confirmed === true) return value;
  return { ...rest, step, confirmed: false, draft: { name, age } };
}

/**
 * The state of the sign-up form, checked by the storage on every read and
 * write: a row that does not match is never handed to the bot. The confirmed
 * answers (`name`, `age`, `confirmed: true`) are kept apart from the form
 * being filled in (`step`, `draft`), so starting the form again, or answering
 * "no", leaves them as they are until new ones are confirmed.
 */
export const FormSession = z.preprocess(
  withDraft,
  z.object({
    /** Which answer the form waits for; `"idle"` when no form is being filled in. */
    step: z.enum(["idle", "name", "age", "confirm"]),
    /** The confirmed name, when `confirmed`. */
    name: Name.optional(),
    /** The confirmed age, when `confirmed`. */
    age: Age.optional(),
    /** Whether `name` and `age` were confirmed. */
    confirmed: z.boolean().default(false),
    /** The answers given so far to the form being filled in; absent when none is. */
    draft: z.object({ name: Name.optional(), age: Age.optional() }).optional(),
  }),
);

/** The session type, inferred from the schema. */
export type FormSession = z.infer<typeof FormSession>;

/** A new user's session. */
export const initialSession = (): FormSession => ({ step: "idle", confirmed: false });
