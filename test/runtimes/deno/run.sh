#!/usr/bin/env bash
# The Deno tests (npm run test:runtimes runs this with the pinned deno on PATH):
# the Deno snippet of docs/runtimes.md under deno check,
# the JSR checks on the source, then the shared conformance suite, a grammY bot
# and the source's own exports under `deno test`, against DATABASE_URL.
#
# Offline: npm packages resolve from this repo's node_modules (npm ci first),
# nothing is fetched from npm, JSR or deno.land, and no deno.lock is written.
# No --sloppy-imports anywhere: the source's .ts specifiers are what Deno and JSR load.
set -euo pipefail
cd "$(dirname "$0")/../../.."
: "${DATABASE_URL:?the Deno tests need DATABASE_URL, a PostgreSQL server}"
[ -f node_modules/pg/package.json ] || { echo "node_modules is missing: run npm ci first" >&2; exit 1; }
deno --version | head -n 1

echo "-- deno check src/index.ts"
deno check src/index.ts

# The Deno snippet of docs/runtimes.md, as a user's project holds it: `deno add npm:grammy
# npm:pg npm:@types/pg` puts no @types/pg where Deno looks for pg's types, so the snippet
# names them itself (`// @deno-types=`). Checked in a project whose node_modules has every
# package of this repo but @types/pg, which deno.json maps from that annotation's specifier
# to the local copy (offline); without the annotation, pg's types are missing and the check fails.
echo "-- deno check the Deno snippet of docs/runtimes.md"
snippet_dir=$(mktemp -d)
trap 'rm -rf "$snippet_dir"' EXIT
mkdir -p "$snippet_dir/node_modules/@types"
for entry in node_modules/* node_modules/.package-lock.json; do
  [ "$(basename "$entry")" = "@types" ] || ln -s "$PWD/$entry" "$snippet_dir/node_modules/"
done
for entry in node_modules/@types/*; do
  [ "$(basename "$entry")" = "pg" ] || ln -s "$PWD/$entry" "$snippet_dir/node_modules/@types/"
done
node -e '
  const text = require("fs").readFileSync("docs/runtimes.md", "utf8");
  const blocks = [...text.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((m) => m[1]).filter((code) => code.includes("Deno.env"));
  if (blocks.length !== 1) { console.error(`docs/runtimes.md: expected one Deno snippet, found ${blocks.length}`); process.exit(1); }
  process.stdout.write(blocks[0]);
' > "$snippet_dir/bot.ts"
# The specifier the snippet's // @deno-types= names, if any: mapped to the local copy of @types/pg.
types_pg=$(grep -o 'npm:@types/pg[^"]*' "$snippet_dir/bot.ts" | head -n 1 || true)
types_entry=""
[ -z "$types_pg" ] || types_entry=",
    \"$types_pg\": \"$PWD/node_modules/@types/pg/index.d.ts\""
cat > "$snippet_dir/deno.json" <<JSON
{
  "nodeModulesDir": "manual",
  "imports": {
    "grammy": "npm:grammy@^1.46.0",
    "pg": "npm:pg@^8.23.1",
    "grammy-postgres-storage": "$PWD/src/index.ts"$types_entry
  }
}
JSON
(cd "$snippet_dir" && deno check --no-lock bot.ts)

echo "-- deno lint src test/runtimes/deno"
deno lint src test/runtimes/deno

# --no-npm: the source imports no npm package; without it deno doc also walks the
# @types/node that tsconfig.json names for the tests, and warns about its references.
echo "-- deno doc --lint src/index.ts"
deno doc --lint --no-npm src/index.ts

# --allow-dirty: the check must not depend on git's state; a clean checkout needs no flag.
echo "-- deno publish --dry-run (jsr.json)"
deno publish --dry-run --allow-dirty

# The version JSR would publish is npm's (test/package-versions.test.ts checks the same under vitest).
package_version=$(node -p 'require("./package.json").version')
jsr_version=$(node -p 'require("./jsr.json").version')
[ "$package_version" = "$jsr_version" ] || { echo "jsr.json has version $jsr_version, package.json $package_version" >&2; exit 1; }

# import_map.json maps "vitest" to the shim and the npm packages to npm: specifiers;
# --node-modules-dir=manual resolves them from node_modules instead of downloading.
# Permissions: the network (the database, and the local fake Bot API), the
# environment (DATABASE_URL; pg reads PG* variables), and reading the repo (PGlite's data files).
echo "-- deno test test/runtimes/deno"
deno test \
  --import-map test/runtimes/deno/import_map.json \
  --node-modules-dir=manual \
  --no-lock \
  --allow-net --allow-env --allow-read=. \
  test/runtimes/deno/
