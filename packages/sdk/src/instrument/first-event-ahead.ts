import { type Api, createStreamExtractor } from "@tollgate/core";

/**
 * A background stream's events, the first read as it comes, though nothing asked for it yet: that event
 * (`response.created`) names the response, which runs on at the provider should the app abort the stream
 * before reading it. Nothing more is read ahead: the SDK's reader waits at that event for the app.
 */
export interface FirstEventAhead {
  /**
   * The response the first event names (null when none did: the stream ended or was aborted first), or
   * BROKE when the stream broke before it: the SDK then aborts the stream itself, an abort of no app's.
   */
  responseId: Promise<string | null | typeof BROKE>;
  /** The events, the first included, for their one reader; null after (a second reader is the SDK's, which refuses it). */
  take(): AsyncIterator<unknown> | null;
}

/** The stream broke before its first event came. */
export const BROKE = Symbol("broke");

export function readFirstEventAhead(events: AsyncIterator<unknown>, api: Api): FirstEventAhead {
  let first: Promise<IteratorResult<unknown>> | null = events.next();
  let taken = false;
  return {
    // Its error is its reader's, if one reads (handled here: a stream that broke unread rejects nothing).
    // An abort by the app ends the stream: the SDK throws nothing for it.
    responseId: first.then(
      (r) => (r.done ? null : responseIdOf(api, r.value)),
      () => BROKE,
    ),
    take() {
      if (taken) return null;
      taken = true;
      return {
        next: () => {
          const next = first ?? events.next();
          first = null;
          return next;
        },
        return: (value?: unknown) =>
          events.return ? events.return(value) : Promise.resolve({ done: true, value }),
      };
    },
  };
}

function responseIdOf(api: Api, event: unknown): string | null {
  const extractor = createStreamExtractor(api);
  extractor.push(event);
  return extractor.responseId();
}
