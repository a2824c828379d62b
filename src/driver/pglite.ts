/**
 * PGlite, PostgreSQL in the process. It is driven as a `query(text, params)`
 * object (`query-client.ts`): one session, statements unprepared, which is
 * also what PGlite needs, since statements prepared by name would collide
 * across storages on its one session. What it adds is how its errors read.
 */
import type { ClientKind } from "./clients.ts";

/** PGlite's errors: a closed instance refuses every statement before running it. */
export const pglite: ClientKind = { errors: { closed: { messages: [/^PGlite is clos(ed|ing)$/] } } };
