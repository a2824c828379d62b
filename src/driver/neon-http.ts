/**
 * Neon's `neon()` over HTTP: a function whose `query(text, params)` sends each
 * statement as one fetch, unprepared. It is driven as a `query(text, params)`
 * object (`query-client.ts`); what it adds is how its errors read: they wrap
 * fetch's as `sourceError`, and a lost or failed fetch leaves the statement in doubt.
 */
import type { ClientKind } from "./clients.ts";

/** `neon()`'s errors. */
export const neonHttp: ClientKind = {
  errors: {
    // Neon's answer with a server error; fetch's (undici's) for a connection lost mid-answer.
    inDoubt: { messages: [/HTTP status 5\d\d/i, /fetch failed/i, /other side closed/i] },
    wraps: ["sourceError"],
  },
};
