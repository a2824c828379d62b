#!/usr/bin/env bash
# npm run test:git-install: installs this repository as a user does before the first
# release, `npm install git+file://<this repo>#<HEAD commit>` into a fresh project (the
# committed state, as from GitHub), with grammY and pg from the npm registry, then:
# - checks that npm built dist/ through the `prepare` script (npm 11 lists the script
#   under install-scripts, but builds a git dependency in its clone before installing it);
# - imports the package from Node and uses it: a grammY bot's session through
#   PostgresStorage (write, read back, delete) and compressedCodec, against DATABASE_URL,
#   or in-process PGlite when it is unset;
# - type-checks the same use with tsc against the installed dist/*.d.ts;
# - installs a stand-in grammy 2.0.0-beta beside it (grammY 2 is not on npm yet): the
#   peer dependency must not block it.
# About 70 to 100 seconds on 2 cores with a warm npm cache, most of it npm installing the dev
# tools in its clone of the repository to build dist/.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$PWD
commit=$(git rev-parse HEAD)
if ! git diff --quiet HEAD -- src package.json tsconfig.build.json scripts/declaration-imports.mjs; then
  echo "note: uncommitted changes in src/ or the build are not part of this check (it installs $commit)"
fi
version() { node -p "require('./node_modules/$1/package.json').version"; }
deps=("grammy@$(version grammy)" "pg@$(version pg)")
[ -n "${DATABASE_URL:-}" ] || deps+=("@electric-sql/pglite@$(version @electric-sql/pglite)")
tsc="$root/node_modules/.bin/tsc"
started=$(date +%s)

work=$(mktemp -d "${TMPDIR:-/tmp}/gps-git-install-XXXXXX")
trap 'rm -rf "$work"' EXIT
cd "$work"
echo '{ "name": "git-install-check", "version": "1.0.0", "private": true, "type": "module" }' > package.json

echo "-- npm install git+file://$root#$commit ${deps[*]}"
npm install --no-audit --no-fund --prefer-offline "git+file://$root#$commit" "${deps[@]}" 2>&1 \
  | grep -v '^npm warn install-scripts' || true
installed=node_modules/grammy-postgres-storage
[ -f "$installed/dist/index.js" ] && [ -f "$installed/dist/index.d.ts" ] \
  || { echo "the git install has no dist/: npm did not build it" >&2; exit 1; }
[ ! -e "$installed/src" ] && [ ! -e "$installed/node_modules" ] \
  || { echo "the git install holds more than the package's files" >&2; exit 1; }

cat > check.mjs <<'EOF'
import { Bot, session } from "grammy";
import { compressedCodec, PostgresStorage } from "grammy-postgres-storage";

const url = process.env.DATABASE_URL;
let client;
let close;
if (url) {
  const { default: pg } = await import("pg");
  client = new pg.Pool({ connectionString: url, max: 2 });
  client.on("error", (error) => console.error("idle connection lost:", error.message));
  close = () => client.end();
} else {
  const { PGlite } = await import("@electric-sql/pglite");
  client = new PGlite();
  close = () => client.close();
}
const tableName = `gps_test_git_install_${process.pid}`;
try {
  const storage = new PostgresStorage({ client, tableName });
  const botInfo = { id: 1, is_bot: true, first_name: "Check", username: "check_bot", can_join_groups: true,
    can_read_all_group_messages: false, supports_inline_queries: false };
  const bot = new Bot("123:offline", { botInfo });
  bot.use(session({ initial: () => ({ count: 0 }), storage }));
  bot.on("message", (ctx) => { ctx.session.count += 1; });
  const update = (id) => ({ update_id: id, message: { message_id: id, date: 0, text: "hi",
    chat: { id: 42, type: "private", first_name: "A" }, from: { id: 42, is_bot: false, first_name: "A" } } });
  await bot.handleUpdate(update(1));
  await bot.handleUpdate(update(2));
  const count = (await storage.read("42"))?.count;
  if (count !== 2) throw new Error(`the session holds ${JSON.stringify(count)}, not 2`);

  const compressed = new PostgresStorage({ client, tableName, codec: compressedCodec() });
  const log = Array.from({ length: 200 }, (_, i) => `step ${i}`);
  await compressed.write("log", { log });
  if ((await compressed.read("log"))?.log?.length !== 200) throw new Error("compressedCodec did not round-trip");
  await storage.delete("42");
  if (await storage.has("42")) throw new Error("the session was not deleted");
  console.log(`imported and used from the git install (${url ? "DATABASE_URL" : "PGlite"})`);
} finally {
  if (url) await client.query(`DROP TABLE IF EXISTS "${tableName}"`);
  await close();
}
EOF
echo "-- node check.mjs"
node check.mjs

cat > check.ts <<'EOF'
import { Bot, type Context, session, type SessionFlavor, type StorageAdapter } from "grammy";
import { compressedCodec, PostgresStorage, type QueryClient } from "grammy-postgres-storage";

declare const client: QueryClient;
const storage = new PostgresStorage<{ count: number }>({ client, codec: compressedCodec() });
const adapter: StorageAdapter<{ count: number }> = storage;
const bot = new Bot<Context & SessionFlavor<{ count: number }>>("");
bot.use(session({ initial: () => ({ count: 0 }), storage: adapter }));
EOF
echo '{ "compilerOptions": { "module": "NodeNext", "strict": true, "noEmit": true, "skipLibCheck": true, "types": [] }, "files": ["check.ts"] }' > tsconfig.json
echo "-- tsc against the installed types"
"$tsc" -p tsconfig.json

echo "-- a grammy 2.0.0-beta beside it (a stand-in: grammY 2 is not on npm)"
mkdir grammy-2
echo '{ "name": "grammy", "version": "2.0.0-beta.1", "type": "module", "main": "index.js" }' > grammy-2/package.json
echo 'export const version = 2;' > grammy-2/index.js
npm install --no-audit --no-fund --prefer-offline ./grammy-2 2>&1 | grep -v '^npm warn install-scripts' || true
[ "$(node -p 'require("grammy/package.json").version')" = "2.0.0-beta.1" ] \
  || { echo "grammy 2.0.0-beta.1 was not installed beside the package" >&2; exit 1; }
npm ls grammy grammy-postgres-storage > /dev/null \
  || { npm ls grammy grammy-postgres-storage >&2; echo "npm ls reports a problem with grammy 2 beside the package" >&2; exit 1; }

echo "-- the git install works ($(($(date +%s) - started)) s)"
