/** What one own poll of a background response found (the gateway's, or a wrapped SDK client's). */
export type FollowOutcome = "finished" | "running" | "gone";

export interface FollowTimes {
  /** The first poll, this long after the submission (or a client's last poll of it); 0: never poll. */
  firstMs: number;
  /** The longest wait between two polls: each waits twice the one before, up to this. */
  maxMs: number;
  /** Polling stops this long after the submission (its budget hold has expired by then). */
  giveUpMs: number;
}

/** Asks the upstream about the response: the `n`th time (1-based). */
type Poll = (n: number) => Promise<FollowOutcome>;

interface Follow {
  poll: Poll;
  /** Polls made so far. */
  polls: number;
  delayMs: number;
  untilMs: number;
  timer?: ReturnType<typeof setTimeout>;
  /** A poll is under way: it arms the next one when it is done. */
  polling: boolean;
}

/** The most responses followed at once; past it the oldest is given up (as the gateway forgets its submission). */
const MAX_FOLLOWED = 10_000;

/**
 * What an own poll that got HTTP `status` found, short of reading a finished response: deleted (404), or
 * not readable with the submission's key (401, 403: revoked, rotated), it is never to be found; anything
 * else is asked again at the next turn.
 */
export function pollOutcomeOf(status: unknown): Exclude<FollowOutcome, "finished"> {
  return status === 404 || status === 401 || status === 403 ? "gone" : "running";
}

/** The longest wait between two own polls of a background response. */
export const FOLLOW_MAX_MS = 5 * 60_000;
/** How long after its submission a background response is still polled. */
export const FOLLOW_GIVE_UP_MS = 24 * 60 * 60_000;

/**
 * Own polls of the background responses submitted through the gateway or a wrapped SDK client. A
 * response is billed when a poll or a resumed stream finds it finished; an app that learns of that from OpenAI's webhooks, or that
 * never asks, would leave it unbilled and its budget hold in place until it expires. So a response no
 * client has polled for `firstMs` is polled here, at doubling intervals, until it is found finished or
 * gone. A client's own poll puts the next one off again: an app that polls costs no extra upstream calls.
 */
export class BackgroundFollower {
  readonly #follows = new Map<string, Follow>();
  #closed = false;

  constructor(private readonly times: FollowTimes) {}

  /** Starts following `id` (once); `poll` asks the upstream. */
  follow(id: string, poll: Poll, now = Date.now()): void {
    if (this.#closed || this.times.firstMs <= 0 || this.#follows.has(id)) return;
    if (this.#follows.size >= MAX_FOLLOWED) this.#drop(this.#follows.keys().next().value!);
    const f: Follow = {
      poll,
      polls: 0,
      delayMs: this.times.firstMs,
      untilMs: now + this.times.giveUpMs,
      polling: false,
    };
    this.#follows.set(id, f);
    this.#arm(f, id);
  }

  /** A client polled `id` (or resumed its stream): the next poll here waits its full turn from now. */
  seen(id: string): void {
    const f = this.#follows.get(id);
    if (!f || f.polling) return;
    clearTimeout(f.timer);
    this.#arm(f, id);
  }

  /** How many responses are followed now. */
  get size(): number {
    return this.#follows.size;
  }

  close(): void {
    this.#closed = true;
    for (const f of this.#follows.values()) clearTimeout(f.timer);
    this.#follows.clear();
  }

  #drop(id: string): void {
    clearTimeout(this.#follows.get(id)?.timer);
    this.#follows.delete(id);
  }

  #arm(f: Follow, id: string): void {
    f.timer = setTimeout(() => void this.#tick(f, id), f.delayMs);
    f.timer.unref();
  }

  async #tick(f: Follow, id: string): Promise<void> {
    f.polling = true;
    const outcome = await f.poll(++f.polls).catch((): FollowOutcome => "running");
    f.polling = false;
    if (this.#follows.get(id) !== f) return; // given up or closed meanwhile
    f.delayMs = Math.min(f.delayMs * 2, this.times.maxMs);
    if (outcome !== "running" || Date.now() + f.delayMs > f.untilMs) {
      this.#follows.delete(id);
      return;
    }
    this.#arm(f, id);
  }
}
