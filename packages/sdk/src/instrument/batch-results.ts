import { type BatchFamily, type BatchResult, BatchResultsReader, batchResult } from "@tollgate/core";
import { namedEventId } from "../ids.js";
import type { TrackedCall } from "./call.js";

/** Where recording asks a reader to wait (the exporter's queue is full enough); null: go on. */
export type Room = () => Promise<void> | null;

// A batch's requests run (and are billed) at the provider, out of the app's sight: their calls are recorded
// when the app reads the batch's results, each at the batch rate, as the gateway records them.

/** The results an agent run has counted: reading them again records them again (stored once), but counts nothing more. */
const countedByRun = new WeakMap<object, Set<string>>();

/** Records one result for `reader`, named by the file or batch and the request's `custom_id`. */
function record(reader: TrackedCall, family: BatchFamily, sourceId: string, r: BatchResult): void {
  const eventId = namedEventId(`${family}-batch:${sourceId}:${r.customId}`);
  const run = reader.agentRun?.run;
  let counted = run ? countedByRun.get(run) : undefined;
  if (run && !counted) {
    counted = new Set();
    countedByRun.set(run, counted);
  }
  const countsRun = !counted?.has(eventId);
  counted?.add(eventId);
  reader.recordBatchResult(r, eventId, { countsRun });
}

/**
 * The file `files.content` returned: when it is a batch output file, its results are recorded as the app
 * reads it. Observed in place (the same Response: status, headers, url and bytes; `withResponse()`'s
 * `data` and `response` stay one object): its body and read methods go through an observer, set up at the
 * first read. A file the app never reads records nothing.
 */
export function observeResultsFile(res: unknown, fileId: string, reader: TrackedCall, room: Room): void {
  // Any fetch's Response (the app may give the SDK its own fetch, undici's say): not `instanceof`.
  if (!isResponse(res) || res.status !== 200 || !res.body) return;
  observeBodyInPlace(res, (own) => own.pipeThrough(resultsObserver(fileId, reader, room)));
}

/**
 * Makes every read of `res`'s body (`body`, `text()`, `json()`, …) go through `observe(its own body)`,
 * set up at the first read; the same Response object otherwise.
 */
export function observeBodyInPlace(
  res: Response,
  observe: (own: ReadableStream<Uint8Array>) => ReadableStream<Uint8Array>,
): void {
  let observed: ReadableStream<Uint8Array> | null = null;
  // The body as it is at the first read: a clone() before it gives the response a new one.
  const body = () => {
    observed ??= observe(ownBody(res)!);
    return observed;
  };
  Object.defineProperty(res, "body", { get: body, configurable: true });
  for (const read of BODY_READS) {
    const method = (res as unknown as Record<string, unknown>)[read];
    if (typeof method !== "function") continue; // `bytes` came after Node 20
    Object.defineProperty(res, read, {
      value: () =>
        (new Response(body(), { headers: res.headers }) as unknown as Record<string, () => unknown>)[read]!(),
      configurable: true,
      writable: true,
    });
  }
}

const BODY_READS = ["arrayBuffer", "blob", "bytes", "formData", "json", "text"] as const;

/** The response's own body (its class's getter, past the one observeResultsFile put on it). */
function ownBody(res: Response): ReadableStream<Uint8Array> | null {
  for (let proto = Object.getPrototypeOf(res); proto; proto = Object.getPrototypeOf(proto)) {
    const getter = Object.getOwnPropertyDescriptor(proto, "body")?.get;
    if (getter) return getter.call(res);
  }
  return null;
}

/** Passes the bytes on as they are, reading results from them on the way (one at a time: an app that stops reading has recorded what it read). */
function resultsObserver(
  fileId: string,
  reader: TrackedCall,
  room: Room,
): TransformStream<Uint8Array, Uint8Array> {
  const lines = new BatchResultsReader(
    "openai",
    (found) => {
      for (const r of found) quietly(() => record(reader, "openai", fileId, r));
    },
    1,
  );
  return new TransformStream({
    async transform(chunk, out) {
      out.enqueue(chunk);
      quietly(() => lines.push(chunk));
      await room(); // records go no faster than the exporter takes them: the app's read waits
    },
    flush() {
      quietly(() => lines.end(true));
    },
  });
}

/** Recording never breaks the app's read. */
function quietly(fn: () => void): void {
  try {
    fn();
  } catch {}
}

function isResponse(v: unknown): v is Response {
  const r = v as Response | null;
  return (
    typeof r?.status === "number" && typeof r.body?.pipeThrough === "function" && r.headers !== undefined
  );
}

/**
 * The Anthropic SDK's decoded message batch results (an async iterable of result lines): each succeeded
 * request is recorded as the app iterates them. The same object, yielding the same values.
 */
export function observedResults(decoded: unknown, batchId: string, reader: TrackedCall, room: Room): unknown {
  const iterable = decoded as { [Symbol.asyncIterator]?: () => AsyncIterator<unknown> } | null;
  const iterate = iterable?.[Symbol.asyncIterator];
  if (typeof iterate !== "function") return decoded;
  iterable![Symbol.asyncIterator] = () => {
    const lines = iterate.call(decoded);
    const next = async (...args: [] | [unknown]) => {
      const step = await lines.next(...args);
      if (!step.done) {
        quietly(() => {
          const r = batchResult("anthropic", step.value);
          if (r) record(reader, "anthropic", batchId, r);
        });
        await room();
      }
      return step;
    };
    const observed: AsyncIterableIterator<unknown> = {
      next,
      return: (value?: unknown) => lines.return?.(value) ?? Promise.resolve({ done: true, value }),
      throw: (e?: unknown) => lines.throw?.(e) ?? Promise.reject(e),
      [Symbol.asyncIterator]: () => observed,
    };
    return observed;
  };
  return decoded;
}
