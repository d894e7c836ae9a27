import { accessSync, constants, createReadStream, statSync } from "node:fs";
import { createInterface } from "node:readline";
import type { Command } from "commander";
import { type Client, connect, RawJson } from "./client.js";
import { CliError, clientOptions, expectOk, type GlobalOpts, printJson } from "./common.js";
import { progressBar } from "./progress.js";
import { formatInt } from "./table.js";

interface Rejection {
  line: number;
  event_id: string | null;
  errors: { field: string; reason: string }[];
}

export interface IngestSummary {
  file: string;
  lines: number;
  accepted: number;
  duplicates: number;
  rejected: number;
  seconds: number;
  events_per_second: number;
  rejections: Rejection[];
}

const MAX_REPORTED = 50;

/** Streams a JSONL file through POST /v1/events in batches; reports per-line rejections. */
export async function ingestFile(
  client: Pick<Client, "request">,
  file: string,
  opts: { workspace: string; batchSize: number; progress: boolean },
): Promise<IngestSummary> {
  const started = performance.now();
  const size = statSync(file).size;
  const s: IngestSummary = {
    file,
    lines: 0,
    accepted: 0,
    duplicates: 0,
    rejected: 0,
    seconds: 0,
    events_per_second: 0,
    rejections: [],
  };
  const bar = opts.progress
    ? progressBar("ingest [{bar}] {percentage}% | {events} lines | {eta_formatted} left")
    : null;
  // The first MAX_REPORTED rejected lines, in line order: a batch's refusals come once it is sent, after
  // its later lines that were not JSON were refused as read.
  const reject = (r: Rejection) => {
    s.rejected++;
    const at = s.rejections.findIndex((x) => x.line > r.line);
    if (at === -1 && s.rejections.length === MAX_REPORTED) return;
    s.rejections.splice(at === -1 ? s.rejections.length : at, 0, r);
    s.rejections.length = Math.min(s.rejections.length, MAX_REPORTED);
  };

  const path = `/v1/events?workspace=${encodeURIComponent(opts.workspace)}`;
  // Each line was parsed once to find bad ones; the good lines go out as their own text, joined.
  const send = async (lines: string[], lineNos: number[]) => {
    const reply = await client.request("POST", path, new RawJson(`[${lines.join(",")}]`));
    if (reply.status === 422 || reply.status === 207 || reply.status === 200) {
      s.accepted += reply.body.accepted;
      s.duplicates += reply.body.duplicates;
      for (const r of reply.body.results)
        if (r.status === "rejected")
          reject({ line: lineNos[r.index]!, event_id: r.event_id, errors: r.errors });
      return;
    }
    expectOk(reply, `batch ending at line ${lineNos.at(-1)}`);
  };

  bar?.start(size, 0, { events: 0 });
  try {
    const stream = createReadStream(file);
    let bytes = 0;
    stream.on("data", (chunk) => {
      bytes += chunk.length;
    });
    let items: string[] = [];
    let lineNos: number[] = [];
    for await (const line of createInterface({ input: stream, crlfDelay: Number.POSITIVE_INFINITY })) {
      s.lines++;
      if (!line.trim()) continue;
      try {
        JSON.parse(line); // exactly one JSON value, so joining the lines is safe
        items.push(line);
        lineNos.push(s.lines);
      } catch (e) {
        reject({
          line: s.lines,
          event_id: null,
          errors: [{ field: "(line)", reason: `not valid JSON: ${(e as Error).message}` }],
        });
      }
      if (items.length >= opts.batchSize) {
        await send(items, lineNos);
        items = [];
        lineNos = [];
        bar?.update(bytes, { events: formatInt(s.lines) });
      }
    }
    if (items.length) await send(items, lineNos);
    bar?.update(size, { events: formatInt(s.lines) });
  } finally {
    bar?.stop();
  }
  const seconds = (performance.now() - started) / 1000;
  s.seconds = Math.round(seconds * 1000) / 1000; // to the ms: --json printed 0.23363300299999992
  s.events_per_second = Math.round((s.accepted + s.duplicates + s.rejected) / seconds);
  return s;
}

/**
 * A file that cannot be read is a usage error saying why, before the data dir is opened or anything is
 * sent: read only once the ingest ran, an unreadable one stopped it with Node's raw error (exit 1). Its
 * access is checked, not an open: a pipe's open would wait for a writer here.
 */
function refuseUnreadable(file: string): void {
  let isDirectory: boolean;
  try {
    isDirectory = statSync(file).isDirectory();
    accessSync(file, constants.R_OK);
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code ?? "";
    const why: Record<string, string> = {
      ENOENT: "no such file",
      EACCES: "permission denied",
      ENOTDIR: "a part of its path is not a directory",
    };
    throw new CliError(
      `cannot read ${file}: ${Object.hasOwn(why, code) ? why[code] : (e as Error).message}`,
      2,
    );
  }
  if (isDirectory) throw new CliError(`cannot read ${file}: a directory, not a JSONL file`, 2);
}

export function registerIngest(program: Command): void {
  program
    .command("ingest <file>")
    .description("load call records from a JSONL file (one record per line); exits 1 if any line is rejected")
    .option("-w, --workspace <id>", "workspace to write to", "default")
    .option("--batch-size <n>", "records per request (max 10000)", "5000")
    .option("--json", "print the summary as JSON")
    .action(
      async (file: string, o: { workspace: string; batchSize: string; json?: boolean }, cmd: Command) => {
        const batchSize = Number(o.batchSize);
        if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 10_000)
          throw new CliError("--batch-size must be 1..10000", 2);
        refuseUnreadable(file);
        const client = await connect(clientOptions(cmd.optsWithGlobals<GlobalOpts>()));
        let s: IngestSummary;
        try {
          s = await ingestFile(client, file, { workspace: o.workspace, batchSize, progress: !o.json });
        } finally {
          await client.close();
        }
        if (o.json) printJson(s);
        else {
          console.log(
            `${file}: ${formatInt(s.lines)} lines in ${s.seconds.toFixed(1)} s (${formatInt(s.events_per_second)} events/s)\n` +
              `  accepted ${formatInt(s.accepted)}, duplicate ${formatInt(s.duplicates)}, rejected ${formatInt(s.rejected)}`,
          );
          for (const r of s.rejections.slice(0, 10))
            console.log(`  line ${r.line}: ${r.errors.map((e) => `${e.field}: ${e.reason}`).join("; ")}`);
          if (s.rejected > 10)
            console.log(`  … ${s.rejected - 10} more (use --json for the first ${MAX_REPORTED})`);
        }
        if (s.rejected > 0) process.exitCode = 1;
      },
    );
}
