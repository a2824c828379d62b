import { z } from "zod";

/**
 * The state of the sign-up form, checked by the storage on every read and
 * write: a row that does not match is never handed to the bot.
 */
export const FormSession = z.object({
  step: z.enum(["idle", "name", "age", "confirm"]),
  name: z.string().min(1).max(64).optional(),
  age: z.number().int().min(1).max(150).optional(),
  confirmed: z.boolean().default(false),
});

/** The session type, inferred from the schema. */
export type FormSession = z.infer<typeof FormSession>;

/** A new user's session. */
export const initialSession = (): FormSession => ({ step: "idle", confirmed: false });
