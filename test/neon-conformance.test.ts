import { conformanceSuite } from "./support/conformance.js";
import { neonClientKinds } from "./support/neon-clients.js";

for (const kind of neonClientKinds) conformanceSuite(kind);
