import { clientKinds } from "./support/clients.js";
import { conformanceSuite } from "./support/conformance.js";

for (const kind of clientKinds) conformanceSuite(kind);
