import { type BatchFamily, type BatchResult, BatchResultsReader, batchResult } from "@tollgate/core";
import { namedEventId } from "../ids.js";
import type { TrackedCall } from "./call.js";

// A batch's requests run (and are billed) at the provider, out of the app's sight: their calls are recorded
// when the app reads the batch's results, each at the batch rate, as the gateway records them.

/** Records one result for `reader`, named by the file or batch and the request's `custom_id`: once. */
function record(reader: TrackedCall, family: BatchFamily, sourceId: string, r: BatchResult): void {
  reader.recordBatchResult(r, namedEventId(`${family}-batch:${sourceId}:${r.customId}`));
}

/**
 * The file `files.content` returned, whose results (when it is a batch output file) are recorded as the
 * app reads it: the same status, headers and bytes. A file the app never reads records nothing.
 */
export function observedResultsFile(res: unknown, fileId: string, reader: TrackedCall): unknown {
  // Any fetch's Response (the app may give the SDK its own fetch, undici's say): not `instanceof`.
  if (!isResponse(res) || res.status !== 200 || !res.body) return res;
  // One result at a time: an app that stops reading has recorded what it read.
  const lines = new BatchResultsReader(
    "openai",
    (found) => {
      for (const r of found) record(reader, "openai", fileId, r);
    },
    1,
  );
  const seen = (fn: () => void) => {
    try {
      fn();
    } catch {
      // recording never breaks the app's read
    }
  };
  const body = res.body.pipeThrough(
    new TransformStream<Uint8Array, Uint8Array>({
      transform(chunk, out) {
        out.enqueue(chunk);
        seen(() => lines.push(chunk));
      },
      flush() {
        seen(() => lines.end(true));
      },
    }),
  );
  return new Response(body, { status: res.status, statusText: res.statusText, headers: res.headers });
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
export function observedResults(decoded: unknown, batchId: string, reader: TrackedCall): unknown {
  const iterable = decoded as { [Symbol.asyncIterator]?: () => AsyncIterator<unknown> } | null;
  const iterate = iterable?.[Symbol.asyncIterator];
  if (typeof iterate !== "function") return decoded;
  iterable![Symbol.asyncIterator] = () => {
    const lines = iterate.call(decoded);
    const next = async (...args: [] | [unknown]) => {
      const step = await lines.next(...args);
      if (!step.done) {
        try {
          const r = batchResult("anthropic", step.value);
          if (r) record(reader, "anthropic", batchId, r);
        } catch {
          // recording never breaks the app's read
        }
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
