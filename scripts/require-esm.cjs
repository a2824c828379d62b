// The package is ESM only. Node 20.19 and later load it with require() as
// well; this checks that a CommonJS caller gets the same exports from dist/.
const assert = require("node:assert");
const [major, minor] = process.versions.node.split(".").map(Number);
if (major < 20 || (major === 20 && minor < 19)) {
  console.log(`require() of ESM needs Node 20.19 or later; this is ${process.version}, skipped`);
  process.exit(0);
}
const library = require("../dist/index.js");
for (const name of [
  "PostgresStorage",
  "PostgresStorageError",
  "StorageOptionError",
  "StorageValidationError",
  "createTableSql",
  "migrateFromStoragePsqlSql",
  "prefixKeys",
  "sessionKey",
]) {
  assert.strictEqual(typeof library[name], "function", `require() gave no ${name}`);
}
console.log(`require() of the ESM build works on ${process.version}`);
