/**
 * The calls of agent runs that wait at this gateway for room under their run's cost or token ceiling (its
 * calls in flight hold the rest): a line per run, served in arrival order. Whether a run has room does not
 * depend on the call that asks (core's heldCeiling reads the run's spend and holds alone), so only the first
 * in line tries its admission again: at once when a call of the run settles here (`released`), else every
 * `pollMs` (another replica's calls settle unseen). Whoever leaves the front (admitted, refused otherwise,
 * gone, out of time) lets the next try at once: the room left may take it too.
 */
export class RunLines {
  readonly #lines = new Map<string, Set<Place>>();
  #closed = false;
  #releases = 0;

  constructor(private readonly pollMs: number) {}

  /** Set at shutdown (close): nobody waits any more. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * How many releases (of any run) this process has heard of: read before the admission that turns a call
   * away, it tells the line whether one came before the call could join.
   */
  get releases(): number {
    return this.#releases;
  }

  /**
   * Joins the end of the run's line, turned away by an admission begun when `releases` was `since`.
   */
  join(workspace: string, runId: string, since: number): Place {
    const key = lineKey(workspace, runId);
    let line = this.#lines.get(key);
    if (!line) {
      line = new Set();
      this.#lines.set(key, line);
    }
    const place = new Place(line, this.pollMs, () => this.#lines.delete(key));
    line.add(place);
    // Joined after the stop began, or after a release it may have missed (any run's: one try more at worst):
    // its wait ends at once.
    if (this.#closed || this.#releases !== since) place.wake();
    return place;
  }

  /** A call of the run let its holds go (or the run was killed, or unkilled): the first in line tries now. */
  released(workspace: string, runId: string): void {
    this.#releases++;
    const line = this.#lines.get(lineKey(workspace, runId));
    if (line) firstOf(line)?.wake();
  }

  /** At shutdown: every wait ends now, and any begun later ends at once. */
  close(): void {
    this.#closed = true;
    for (const line of this.#lines.values()) for (const place of line) place.wake();
  }
}

/** A call's place in its run's line. */
export class Place {
  /** Ends the wait in progress; null between waits. */
  #wake: (() => void) | null = null;
  /** Woken between waits: the next ends at once. */
  #woken = false;

  constructor(
    private readonly line: Set<Place>,
    private readonly pollMs: number,
    private readonly emptied: () => void,
  ) {}

  get first(): boolean {
    return firstOf(this.line) === this;
  }

  /**
   * Waits for this call's next try: first in line, until woken or for `pollMs`; behind others, until woken
   * (it became first, its client left, the gateway stops). Never past `until` (ms since the epoch).
   */
  next(until: number): Promise<void> {
    if (this.#woken) {
      this.#woken = false;
      return Promise.resolve();
    }
    const left = Math.max(0, until - Date.now());
    return new Promise((resolve) => {
      const done = () => {
        clearTimeout(timer);
        this.#wake = null;
        resolve();
      };
      const timer = setTimeout(done, this.first ? Math.min(this.pollMs, left) : left);
      this.#wake = done;
    });
  }

  wake(): void {
    if (this.#wake) this.#wake();
    else this.#woken = true;
  }

  /** Leaves the line (once): the next call, first now, tries at once. */
  leave(): void {
    const wasFirst = this.first;
    if (!this.line.delete(this)) return;
    if (!this.line.size) this.emptied();
    else if (wasFirst) firstOf(this.line)!.wake();
  }
}

const lineKey = (workspace: string, runId: string) => `${workspace}\u0000${runId}`;

const firstOf = (line: Set<Place>): Place | undefined => line.values().next().value;
