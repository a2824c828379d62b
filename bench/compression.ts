/**
 * compressedCodec on real @grammyjs/conversations state: the example bot's
 * /feedback conversation waiting for its rating, and a conversation that keeps
 * every answer (dev/example-conversation.ts), driven through a real grammY Bot
 * and a PostgresStorage for N steps, once with the default codec and once with
 * compressedCodec. Reports the bytes the row holds (`octet_length(value::text)`)
 * and the CPU one update spends in the codec: one decode (the read) plus one
 * encode (the write) of that state.
 *
 * `npm run bench` runs it as part of the whole; on its own:
 * `node --import tsx bench/compression.ts [--quick]` prints its section of BENCHMARKS.md.
 */
import pg from "pg";
import { fileURLToPath } from "node:url";
import { chat, exampleBot, feedbackTexts, listBot, listTexts } from "../dev/example-conversation.js";
import { startFakeBotApi } from "../dev/fake-bot-api.js";
import { strictJson } from "../src/codec.js";
import { type Codec, compressedCodec } from "../src/index.js";

/** One conversation state, as stored by each codec, and the codec's CPU per update on it. */
export interface CompressionSample {
  /** What the state is: which conversation, after how many updates. */
  readonly label: string;
  readonly steps: number;
  /** Bytes of the row's value, default codec and compressedCodec. */
  readonly plainBytes: number;
  readonly compressedBytes: number;
  /** Median µs of CPU (user + system) per decode + encode, each codec. */
  readonly plainMicros: number;
  readonly compressedMicros: number;
}

export interface CompressionResults {
  readonly samples: readonly CompressionSample[];
  /** compressedCodec's threshold in this run. */
  readonly threshold: number;
}

/**
 * Drives the conversations on `url` in tables named by `table`, then times the
 * codecs on the states they left.
 */
export async function measureCompression(
  url: string,
  table: (label: string) => string,
  quick: boolean,
): Promise<CompressionResults> {
  const checkpoints = quick ? [1, 10, 50] : [1, 2, 10, 50, 100, 200];
  const pool = new pg.Pool({ connectionString: url, max: 2 });
  const api = await startFakeBotApi();
  const codec = compressedCodec();
  const states: { label: string; steps: number; plainBytes: number; compressedBytes: number; text: string }[] = [];
  try {
    const sizeOf = async (name: string, like: string) => {
      const { rows } = await pool.query<{ bytes: number; text: string }>(
        `SELECT octet_length(value::text) AS bytes, value::text AS text FROM "${name}" WHERE key LIKE $1`,
        [like],
      );
      if (rows.length !== 1) throw new Error(`expected one conversation row in ${name}, found ${rows.length}`);
      return rows[0] as { bytes: number; text: string };
    };

    // The example bot's /feedback conversation, waiting for a rating after refusing two.
    const example = { plain: table("z_example_plain"), compressed: table("z_example_compressed") };
    for (const [name, withCodec] of [
      [example.plain, undefined],
      [example.compressed, codec],
    ] as const) {
      await chat(exampleBot({ client: pool, tableName: name, apiRoot: api.apiRoot, codec: withCodec }).bot, 1, [
        ...feedbackTexts(4),
      ]);
    }
    const plainExample = await sizeOf(example.plain, "conversation:%");
    states.push({
      label: "example bot, /feedback waiting for its rating",
      steps: 4,
      plainBytes: plainExample.bytes,
      compressedBytes: (await sizeOf(example.compressed, "conversation:%")).bytes,
      text: plainExample.text,
    });

    // A conversation that keeps every answer, after each checkpoint's number of updates.
    const list = { plain: table("z_list_plain"), compressed: table("z_list_compressed") };
    const bots = {
      plain: listBot({ client: pool, tableName: list.plain, apiRoot: api.apiRoot }),
      compressed: listBot({ client: pool, tableName: list.compressed, apiRoot: api.apiRoot, codec }),
    };
    const texts = listTexts(Math.max(...checkpoints));
    let sent = 0;
    for (const steps of checkpoints) {
      await chat(bots.plain, 2, texts.slice(sent, steps));
      await chat(bots.compressed, 2, texts.slice(sent, steps));
      sent = steps;
      const plain = await sizeOf(list.plain, "%");
      states.push({
        label: "/list conversation keeping every answer",
        steps,
        plainBytes: plain.bytes,
        compressedBytes: (await sizeOf(list.compressed, "%")).bytes,
        text: plain.text,
      });
    }
  } finally {
    await api.stop();
    await pool.end();
  }

  const samples: CompressionSample[] = [];
  for (const state of states) {
    const value = JSON.parse(state.text);
    const plainText = await strictJson.stringify(value);
    const compressedText = await codec.stringify(value);
    samples.push({
      label: state.label,
      steps: state.steps,
      plainBytes: state.plainBytes,
      compressedBytes: state.compressedBytes,
      ...(await cpuPerUpdate(value, plainText, compressedText, codec, quick)),
    });
  }
  return { samples, threshold: 1024 };
}

/**
 * Median CPU microseconds per update spent in each codec: a decode of the
 * stored text (the read), then an encode of the value (the write back).
 * Rounds alternate the codecs, so that machine noise hits both alike.
 */
async function cpuPerUpdate(
  value: unknown,
  plainText: string,
  compressedText: string,
  codec: Codec,
  quick: boolean,
): Promise<{ plainMicros: number; compressedMicros: number }> {
  const { rounds, perRound, warmup } = quick
    ? { rounds: 5, perRound: 50, warmup: 1 }
    : { rounds: 11, perRound: 100, warmup: 2 };
  const runs: [string, Codec, string][] = [
    ["plain", strictJson, plainText],
    ["compressed", codec, compressedText],
  ];
  const samples = new Map<string, number[]>(runs.map(([name]) => [name, []]));
  for (let round = 0; round < warmup + rounds; round += 1) {
    for (let r = 0; r < runs.length; r += 1) {
      const [name, run, text] = runs[(round + r) % runs.length] as (typeof runs)[number];
      const used = process.cpuUsage();
      for (let i = 0; i < perRound; i += 1) {
        await run.parse(text);
        await run.stringify(value);
      }
      const { user, system } = process.cpuUsage(used);
      if (round >= warmup) samples.get(name)?.push((user + system) / perRound);
    }
  }
  const median = (name: string) => {
    const sorted = [...(samples.get(name) ?? [])].sort((a, b) => a - b);
    return sorted[sorted.length >> 1] ?? Number.NaN;
  };
  return { plainMicros: median("plain"), compressedMicros: median("compressed") };
}

// On its own: against DATABASE_URL, or PGlite as npm run bench starts it.
if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const { startDatabase } = await import("./database.js");
  const { compressionSection } = await import("./report.js");
  const database = await startDatabase();
  const tables: string[] = [];
  const admin = new pg.Pool({ connectionString: database.url, max: 1 });
  try {
    const results = await measureCompression(
      database.url,
      (label) => {
        const name = `bench_${label}_${process.pid}`;
        tables.push(name);
        return name;
      },
      process.argv.includes("--quick"),
    );
    console.log(compressionSection(results, database.label));
  } finally {
    for (const name of tables) await admin.query(`DROP TABLE IF EXISTS "${name}"`).catch(() => {});
    await admin.end();
    await database.stop();
  }
}
