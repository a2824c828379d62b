// TypeScript rewrites the source's relative ".ts" imports to ".js" in the
// emitted JavaScript but not in the declarations; consumers on TypeScript
// releases before 5.7 would not resolve "./storage.ts" next to storage.d.ts.
import { readdirSync, readFileSync, writeFileSync } from "node:fs";
import { join } from "node:path";

const dist = process.argv[2] ?? "dist";
for (const file of readdirSync(dist).filter((name) => name.endsWith(".d.ts"))) {
  const path = join(dist, file);
  writeFileSync(path, readFileSync(path, "utf8").replace(/(from "\.\/[^"]+)\.ts"/g, '$1.js"'));
}
