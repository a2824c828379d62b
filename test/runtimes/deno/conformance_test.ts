/**
 * The shared conformance suite (test/conformance.ts) under Deno, against
 * DATABASE_URL, for the drivers a Deno bot reaches through `npm:`.
 */
import { conformanceSuite } from "../../conformance.ts";
import { clientKinds } from "../../support/clients.ts";

for (const kind of clientKinds) conformanceSuite(kind);
