import { AsyncResource } from "node:async_hooks";
import {
  BackgroundFollower,
  type BackgroundResponse,
  backgroundResponse,
  type ExtractedUsage,
  extractFromResponse,
  FOLLOW_GIVE_UP_MS,
  FOLLOW_MAX_MS,
  type FollowOutcome,
  finalResponseOf,
  isFinished,
  pollOutcomeOf,
  Recent,
} from "@tollgate/core";
import type { AgentRun } from "../agent-run.js";
import type { StreamLike } from "./api-promise.js";
import type { BackgroundPolls, PollOptions, RequestedModels, TrackedCall } from "./call.js";

// OpenAI background responses (`background: true`): the submission is recorded at once (kind=other), the
// response's cost when a poll (`responses.retrieve`) finds it finished, as the gateway does.

/**
 * Submissions made here, by response id: the finished response is recorded for their scope and run. One
 * pushed out by newer ones lets its hold go (nothing here would find its response finished for it).
 */
const submitted = new Recent<TrackedCall>({ forgotten: (call) => call.submissionForgotten() });
/**
 * A response recorded as finished here (by a poll, or its stream), recorded once: the runs its cost was
 * counted to (so a poll again inside one's `run.llm(…)` counts it no more), and the models its submission
 * named (what a poll counting it to another run prices it at, as its record was priced).
 */
export interface FinishedResponse {
  countedTo: AgentRun[];
  submittedAs: RequestedModels;
}
const finished = new Recent<FinishedResponse>();

/**
 * A submission made through a wrapped client (or a background stream cut short: the response runs on):
 * its call records the response once a poll finds it finished. Unpolled ones (webhooks) are forgotten
 * oldest first, each kept small. False when the response was recorded already: nothing to wait for.
 */
export function rememberSubmission(responseId: string, call: TrackedCall): boolean {
  call.agentRun?.run.backgroundSubmitted(); // one of its own to poll, finished or not
  if (finished.has(responseId)) return false;
  call.keepForLater();
  submitted.set(responseId, call);
  call.spec.background?.follow(responseId, call.pollOptions);
  return true;
}

/** No scope and no agent run: the own polls' context (made at load, before any scope could be entered). */
const outsideScopes = new AsyncResource("tollgate.background-poll");

/**
 * A wrapped client's own polls of its background responses (BackgroundFollower): one that no poll through
 * the client has found finished for `firstMs` is retrieved through the client itself, so that its cost is
 * recorded though the app learns of its end from OpenAI's webhooks, or never asks. The poll goes through
 * the wrapped `retrieve` and is recorded as the app's own would be, for its submission's scope and run.
 * Undefined (no own polls) when `firstMs` is 0 or the client has no `responses.retrieve`.
 */
export function backgroundPolls(responses: unknown, firstMs: number): BackgroundPolls | undefined {
  type Retrieve = (id: string, query: object, options: PollOptions) => PromiseLike<unknown>;
  const retrieve = () => (responses as { retrieve?: Retrieve } | null | undefined)?.retrieve;
  if (firstMs <= 0 || typeof retrieve() !== "function") return undefined;
  const follower = new BackgroundFollower({ firstMs, maxMs: FOLLOW_MAX_MS, giveUpMs: FOLLOW_GIVE_UP_MS });
  const poll = async (id: string, request: PollOptions): Promise<FollowOutcome> => {
    if (finished.has(id) || !submitted.has(id)) return "gone"; // found, or forgotten
    try {
      const body = await outsideScopes.runInAsyncScope(() => retrieve()!.call(responses, id, {}, request));
      const response =
        typeof body === "object" && body !== null
          ? backgroundResponse(body as Record<string, unknown>)
          : null;
      return response && isFinished(response) ? "finished" : "running";
    } catch (e) {
      return pollOutcomeOf((e as { status?: unknown } | null)?.status); // the SDK's APIError has it
    }
  };
  return {
    follow: (id, request) => follower.follow(id, () => poll(id, request)),
    seen: (id) => follower.seen(id),
  };
}

/**
 * The first to find a background response finished (a poll, or its stream to its end) records it, as
 * `recorded` says: false when another did already.
 */
export function markFinished(responseId: string, recorded: FinishedResponse): boolean {
  submitted.delete(responseId);
  return finished.add(responseId, recorded);
}

/** Whether a background response was found finished here already (by a poll, a resumption, or its stream). */
export function foundFinished(responseId: string): boolean {
  return finished.has(responseId);
}

/** How a background response was found finished: by a poll, or at a stream's final event (resumed, say). */
export type ResponseRead = "poll" | "stream";

/**
 * What a poll (or a stream's final event: `read`) returned: when it is a background response found
 * finished for the first time here, its one llm record. For the submission's scope and run when this
 * process submitted it, else for the poll's (`poll`: made when the poll was, so the run is not counted a
 * second LLM call: it was at submission).
 */
export function recordIfFinished(body: unknown, poll: TrackedCall, read: ResponseRead = "poll"): void {
  if (typeof body !== "object" || body === null) return;
  const response = backgroundResponse(body as Record<string, unknown>);
  if (!response || !isFinished(response)) return;
  const found = finished.get(response.id);
  if (found) {
    countOnceInLlm(found, poll, response, () => usageOf(body)); // recorded already
    return;
  }
  const usage = usageOf(body);
  // A stream's final event without usage it can read, of a response that did not fail: left, as a stream
  // cut short is, to the poll that reads the usage (the app's, or the client's own): its submission here
  // keeps its hold, and is followed still. Not followed (followBackgroundMs 0), no poll may come: recorded
  // now, at a cost unknown, its hold charged, as a poll that cannot read it either records it.
  if (!usage && read === "stream" && response.failure === null && submitted.get(response.id)?.spec.background)
    return;
  if (!usage && response.failure !== null) {
    // Finished without usage (failed or cancelled before it ran): nothing was billed; its submission's hold
    // goes, and its room (only those still running take room: it would push out one that is).
    submitted.get(response.id)?.backgroundUnbilled();
    submitted.delete(response.id);
    return;
  }
  // Its usage read; or unreadable in a response a poll found that ran (completed, incomplete), whose usage
  // no later poll reads better: recorded as a call of unknown cost, its hold counted as that cost
  // (finishBackground), as the gateway records it.
  const call = submitted.get(response.id) ?? poll;
  const recorded = { countedTo: call.agentRun ? [call.agentRun.run] : [], submittedAs: call.requestedModels };
  markFinished(response.id, recorded);
  // Counted to the poll's run here, before the submission's hold goes (told first: the record's sink may
  // throw once the usage is counted).
  countOnceInLlm(recorded, poll, response, () => usage);
  call.finishBackground(response, usage);
}

/** A finished response's usage; null when it has none it can read (cancelled before it ran, say). */
function usageOf(body: unknown): ExtractedUsage | null {
  try {
    return extractFromResponse("openai.responses", body);
  } catch {
    return null;
  }
}

/**
 * A poll, inside `run.llm(…)`, of a finished response `recorded`: a run its cost was not counted to (which
 * it is then) has it counted by the poll itself, priced as its record was, so a run counts a response once
 * however often it polls, and whatever the callback then returns (`output_text`, say) or throws; `run.llm`
 * counts nothing from its reply (a resumed stream's neither, which it cannot read).
 */
function countOnceInLlm(
  recorded: FinishedResponse,
  poll: TrackedCall,
  response: BackgroundResponse,
  usage: () => ExtractedUsage | null,
): void {
  const run = poll.agentRun?.counts === false ? poll.agentRun.run : undefined;
  if (!run) return;
  if (!recorded.countedTo.includes(run)) {
    recorded.countedTo.push(run);
    const found = usage();
    if (found) poll.countBackgroundToRun(response, found, recorded.submittedAs);
  }
  poll.usageCounted();
}

/**
 * A background stream resumed (`responses.retrieve(id, { stream: true })`): the response its final event
 * carries is recorded as a poll that found it finished would record it. The app reads the same events.
 */
export function observeResumedStream(stream: StreamLike, poll: TrackedCall): void {
  const original = stream.iterator;
  stream.iterator = () => eventsFindingFinished(original.call(stream), poll);
}

/**
 * Relays `events` unchanged; the response a final event carries is recorded as `poll` finding it finished
 * would record it (a resumed stream, or the rest of a stream recorded as its submission already: `submitted`,
 * a background response by its request, as its own stream's record takes it, whatever the event says).
 */
export function eventsFindingFinished(
  events: AsyncIterator<unknown>,
  poll: TrackedCall,
  submitted = false,
): AsyncIterableIterator<unknown> {
  const seen = (r: IteratorResult<unknown>) => {
    const response = r.done ? null : finalResponseOf(r.value);
    if (response) recordIfFinished(submitted ? { ...response, background: true } : response, poll, "stream");
    return r;
  };
  const iterator: AsyncIterableIterator<unknown> = {
    next: () => events.next().then(seen),
    return: (value?: unknown) =>
      events.return ? events.return(value) : Promise.resolve({ done: true, value }),
    [Symbol.asyncIterator]: () => iterator,
  };
  return iterator;
}
