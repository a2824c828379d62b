/**
 * `npm run dev`: the example bot in real workerd, against an embedded
 * PostgreSQL, with a terminal chat in place of Telegram.
 *
 *   npm run dev                                   chat in the terminal
 *   npm run dev -- --script worker-example/chat.txt   send each line, print the transcript
 *   npm run dev -- --hyperdrive                   run the Hyperdrive (pg) variant
 *
 * State lives in PGlite under .data/ (or in the server at DATABASE_URL), so it
 * survives a restart. Nothing listens beyond 127.0.0.1.
 */
import { readFileSync } from "node:fs";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { startDevStack, type DevStack } from "./dev-stack.js";

const { values } = parseArgs({
  options: {
    script: { type: "string" },
    hyperdrive: { type: "boolean", default: false },
    verbose: { type: "boolean", default: false },
    help: { type: "boolean", default: false },
  },
});
if (values.help) {
  console.log("usage: npm run dev [-- --script FILE] [--hyperdrive] [--verbose]");
  process.exit(0);
}

const info = (line: string) => process.stderr.write(`${line}\n`);
const databaseUrl = process.env.DATABASE_URL || undefined;
info(`Starting: ${databaseUrl ? `PostgreSQL at ${databaseUrl}` : "PGlite in .data/pglite"}, local Neon endpoint, fake Bot API, wrangler dev…`);
const stack = await startDevStack({
  databaseUrl,
  variant: values.hyperdrive ? "hyperdrive" : "neon",
  log: values.verbose ? (line) => info(`[wrangler] ${line}`) : undefined,
});
info(`Worker ready at ${stack.workerUrl} (${values.hyperdrive ? "pg through Hyperdrive" : "Neon over HTTP"}).`);

async function say(text: string): Promise<void> {
  const { status, replies } = await stack.send(text);
  if (status !== 200) console.log(`(the worker answered HTTP ${status})`);
  for (const reply of replies) console.log(`bot> ${reply.replace(/\n/g, "\n     ")}`);
}

async function stop(current: DevStack, code: number): Promise<never> {
  await current.stop();
  process.exit(code);
}

try {
  if (values.script !== undefined) {
    const lines = readFileSync(values.script, "utf8").split("\n").map((line) => line.trim()).filter((line) => line !== "" && !line.startsWith("#"));
    for (const line of lines) {
      console.log(`you> ${line}`);
      await say(line);
    }
    await stop(stack, 0);
  }
  info("Type a message for the bot (try /start); Ctrl-D or Ctrl-C to stop.");
  const terminal = createInterface({ input: process.stdin, output: process.stdout, prompt: "you> " });
  terminal.on("SIGINT", () => terminal.close());
  terminal.on("close", () => void stop(stack, 0));
  terminal.prompt();
  for await (const line of terminal) {
    if (line.trim() !== "") await say(line.trim());
    terminal.prompt();
  }
} catch (error) {
  info(`dev stack failed: ${error instanceof Error ? error.message : String(error)}`);
  await stop(stack, 1);
}
