import { clientKinds } from "./support/clients.js";
import { conformanceSuite } from "./conformance.js";

for (const kind of clientKinds) conformanceSuite(kind);
