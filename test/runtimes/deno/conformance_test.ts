/**
 * The shared conformance suite (test/support/conformance.ts) under Deno, against
 * DATABASE_URL, for the drivers a Deno bot reaches through `npm:`.
 */
import { clientKinds } from "../../support/clients.ts";
import { conformanceSuite } from "../../support/conformance.ts";

for (const kind of clientKinds) conformanceSuite(kind);
