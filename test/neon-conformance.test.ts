import { neonClientKinds } from "./support/neon-clients.js";
import { conformanceSuite } from "./conformance.js";

for (const kind of neonClientKinds) conformanceSuite(kind);
