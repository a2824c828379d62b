/**
 * `npm run dev`: the example bot in real workerd, against an embedded
 * PostgreSQL, with a terminal chat in place of Telegram.
 *
 *   npm run dev                                   chat in the terminal
 *   npm run dev -- --script worker-example/chat.txt   send each line, print the transcript
 *   printf '/start\n/me\n' | npm run dev          the same, from stdin
 *   npm run dev -- --hyperdrive                   run the Hyperdrive (pg) variant
 *
 * State lives in PGlite under .data/ (or in the server at DATABASE_URL), so it
 * survives a restart. Nothing listens beyond 127.0.0.1.
 *
 * The transcript goes to stdout; what the worker logged (its errors first of
 * all) and the stack's own messages go to stderr. However this process ends
 * (end of input, Ctrl-C, Ctrl-D, a signal, its output closing, an error), it
 * stops every process of the stack before it exits.
 */
import { readFileSync } from "node:fs";
import { relative } from "node:path";
import { createInterface } from "node:readline";
import { parseArgs } from "node:util";
import { root, startDevStack, type DevStack } from "./dev-stack.js";
import { watchLaunchers } from "./launchers.js";

const USAGE = `usage: npm run dev [-- OPTIONS]

Runs the example bot (worker-example/) in workerd under wrangler dev, with its
state in PGlite under .data/pglite (or in the PostgreSQL at DATABASE_URL), and
chats with it in the terminal. With stdin not a terminal, every line of it is
sent, as with --script.

  --script FILE    send each line of FILE (blank lines and # comments are
                   skipped), print the transcript, and exit
  --data-dir DIR   keep PGlite's files in DIR instead of .data/pglite
  --hyperdrive     run the Hyperdrive variant (pg) instead of Neon over HTTP
  --verbose        print everything wrangler prints, as it comes (by default
                   only what the worker logs while it handles a message)
  --help           print this

Exit status: 0 when every message was answered (HTTP 200, no error logged),
1 when one was not or the stack failed, 2 for a usage error, 128+N after
signal N.`;

const info = (line: string) => {
  if (stderrOpen) process.stderr.write(`${line}\n`);
};
const out = (line: string) => {
  if (stdoutOpen) process.stdout.write(`${line}\n`);
};
let stdoutOpen = true;
let stderrOpen = true;

let values: { script?: string; "data-dir"?: string; hyperdrive?: boolean; verbose?: boolean; help?: boolean };
try {
  ({ values } = parseArgs({
    options: {
      script: { type: "string" },
      "data-dir": { type: "string" },
      hyperdrive: { type: "boolean", default: false },
      verbose: { type: "boolean", default: false },
      help: { type: "boolean", default: false },
    },
  }));
} catch (error) {
  info(`${describe(error)}\n\n${USAGE}`);
  process.exit(2);
}
if (values.help) {
  out(USAGE);
  process.exit(0);
}
const verbose = values.verbose === true;

let script: string[] | undefined;
if (values.script !== undefined) {
  try {
    script = readFileSync(values.script, "utf8").split("\n").flatMap(message);
  } catch (error) {
    info(`cannot read the script: ${describe(error)}`);
    process.exit(2);
  }
}

/** A line of input as a message: trimmed, none for blank lines and # comments. */
function message(line: string): string[] {
  const text = line.trim();
  return text === "" || text.startsWith("#") ? [] : [text];
}

/** An error's message with its causes: "fetch failed: connect ECONNREFUSED 127.0.0.1:8787". */
function describe(error: unknown): string {
  if (!(error instanceof Error)) return String(error);
  const own = error.message || (error as NodeJS.ErrnoException).code || error.name;
  return error.cause === undefined ? own : `${own}: ${describe(error.cause)}`;
}

// --- stopping, whatever the reason ------------------------------------------

let sent = 0;
let failed = 0;
/** 0 when every message so far was answered, 1 otherwise. */
const status = () => (failed > 0 ? 1 : 0);

const abort = new AbortController();
let starting: Promise<DevStack> | undefined;
let stopping: Promise<never> | undefined;

/** Stops the stack (or its start), then exits with `code`; the first call wins. */
function shutdown(code: number, reason?: string): Promise<never> {
  stopping ??= (async () => {
    if (reason !== undefined) info(reason);
    abort.abort();
    // A last resort: dev-stack kills wrangler's process groups on exit anyway.
    setTimeout(() => {
      info("(the stack did not stop within 20 s; exiting)");
      process.exit(code);
    }, 20_000).unref();
    const stack = await starting?.catch(() => undefined);
    await stack?.stop();
    process.exit(code);
  })();
  return stopping;
}

const SIGNALS = { SIGINT: 2, SIGTERM: 15, SIGHUP: 1 } as const;
for (const [signal, number] of Object.entries(SIGNALS)) {
  process.on(signal, () => void shutdown(128 + number, `(${signal}: stopping)`));
}
// The reader went away (`npm run dev | head`): nothing more to show, so stop.
process.stdout.on("error", () => {
  stdoutOpen = false;
  void shutdown(status());
});
process.stderr.on("error", () => {
  stderrOpen = false;
});
watchLaunchers(() => void shutdown(1, "(npm run dev was stopped: stopping)"));

// --- the stack ----------------------------------------------------------------

const databaseUrl = process.env.DATABASE_URL || undefined;
const dataDir = values["data-dir"];
if (databaseUrl !== undefined && dataDir !== undefined)
  info("(--data-dir is for PGlite; with DATABASE_URL set, it is not used)");
const where = databaseUrl
  ? `PostgreSQL at ${databaseUrl}`
  : `PGlite in ${dataDir ?? relative(process.cwd(), `${root}/.data/pglite`)}`;
// The Hyperdrive variant's worker connects with pg through Hyperdrive's local mode, not through the Neon endpoint.
const transport = values.hyperdrive ? "pg through Hyperdrive (local mode)" : "local Neon endpoint";
info(`Starting: ${where}, ${transport}, fake Bot API, wrangler dev…`);
let ready = false;
let sending = false;
let inError = false;
/** Between messages: an error wrangler prints (a failed rebuild after an edit, say), with its indented details. */
function showError(line: string): void {
  inError = /^(✘ \[ERROR\]|\[wrangler:error\])/.test(line) || (inError && /^\s/.test(line));
  if (inError) info(`[wrangler] ${line}`);
}

starting = startDevStack({
  databaseUrl,
  dataDir,
  variant: values.hyperdrive ? "hyperdrive" : "neon",
  workerLogs: true,
  log: (line) => {
    if (verbose) info(`[wrangler] ${line}`);
    else if (ready && !sending) showError(line);
  },
  signal: abort.signal,
  onWorkerExit: (error) => void shutdown(1, `dev stack failed: ${error.message}`),
});
let stack: DevStack;
try {
  stack = await starting;
} catch (error) {
  await (stopping ?? shutdown(1, `dev stack failed to start: ${describe(error)}`));
  throw error; // not reached: shutdown exits
}
ready = true;
info(`Worker ready at ${stack.workerUrl} (${values.hyperdrive ? "pg through Hyperdrive" : "Neon over HTTP"}).`);

let lastLogs = "";
/** Shows what the worker logged for one message: its messages, without stack frames (--verbose shows them). */
function showLogs(logs: string[]): void {
  const lines = logs.filter((line) => !/^\s+at /.test(line)).map((line) => line.replace(/^\[wrangler:error\] /, ""));
  if (lines.length === 0) return;
  const text = lines.join("\n");
  if (text === lastLogs) return info("[worker] (the same as above)");
  lastLogs = text;
  for (const line of lines) info(`[worker] ${line}`);
}

/** Sends one message and prints the bot's replies; a message fails when the worker did not answer 200 or logged an error. */
async function say(text: string): Promise<void> {
  if (stopping !== undefined) return;
  sent += 1;
  sending = true;
  try {
    const { status: http, replies, logs, errorLogged } = await stack.send(text, { signal: abort.signal });
    sending = false;
    if (!verbose) showLogs(logs);
    for (const reply of replies) out(`bot> ${reply.replace(/\n/g, "\n     ")}`);
    if (http !== 200) out(`(the worker answered HTTP ${http})`);
    else if (errorLogged) out("(the worker logged an error)");
    if (http !== 200 || errorLogged) failed += 1;
  } catch (error) {
    sending = false;
    if (stopping !== undefined) return;
    failed += 1;
    out(`(could not reach the worker: ${describe(error)})`);
  }
}

/** Sends every line, echoing it, then stops with the exit status. */
async function transcript(lines: Iterable<string> | AsyncIterable<string>): Promise<never> {
  for await (const line of lines) {
    for (const text of message(line)) {
      if (stopping !== undefined) return stopping;
      out(`you> ${text}`);
      await say(text);
    }
  }
  if (failed > 0) info(`${failed} of ${sent} messages failed; what the worker logged is above.`);
  return shutdown(status());
}

if (script !== undefined) {
  await transcript(script);
} else if (!process.stdin.isTTY) {
  await transcript(createInterface({ input: process.stdin, crlfDelay: Infinity }));
} else {
  info("Type a message for the bot (try /start); Ctrl-D or Ctrl-C to stop.");
  const terminal = createInterface({ input: process.stdin, output: process.stdout, prompt: "you> " });
  // Ctrl-C stops at once, even while a message is on its way; Ctrl-D after it.
  terminal.on("SIGINT", () => {
    out("");
    void shutdown(status());
  });
  terminal.prompt();
  for await (const line of terminal) {
    if (line.trim() !== "") await say(line.trim());
    if (stopping !== undefined) break;
    terminal.prompt();
  }
  out("");
  await shutdown(status());
}
