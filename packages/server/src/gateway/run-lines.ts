import type { HeldCeiling, RunHold } from "@tollgate/core";

/**
 * The calls of agent runs that wait at this gateway for room under their run's cost or token ceiling (its
 * calls in flight hold the rest): a line per run, served in the order the calls came (a gateway's retry of
 * a call keeps the call's place, ahead of those that came after it). Whether a run has room does not
 * depend on the call that asks (core's heldCeiling reads the run's spend and holds alone), so only the first
 * in line tries its admission again: at once when a call of the run settles here (`released`), else every
 * `pollMs` (another replica's calls settle unseen). Whoever leaves the front (admitted, refused otherwise,
 * gone, out of time) lets the next try at once: the room left may take it too. A call that has not joined
 * goes ahead of the first in line that came before it only with room left for what that one will hold
 * (`toLeave`): a call finding room goes at once, but never takes the room the first in line waits for.
 */
export class RunLines {
  readonly #lines = new Map<string, Line>();
  #closed = false;
  #releases = 0;
  #arrivals = 0;

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
   * The next call's arrival: its place in the order calls came to this gateway. A count, not a clock (a
   * wall-clock step back would put later calls ahead of earlier ones); lines are per gateway, so the order
   * never leaves the process, and a per-process count is all it needs.
   */
  arrival(): number {
    return ++this.#arrivals;
  }

  /**
   * Joins the run's line, turned away by an admission begun when `releases` was `since`: behind every call
   * that came (`arrived`: its arrival()) no later than it. `hold`: what the call holds once admitted (null:
   * nothing known), the room a call that came after it leaves it (toLeave).
   */
  join(workspace: string, runId: string, since: number, arrived: number, hold: RunHold | null = null): Place {
    const key = lineKey(workspace, runId);
    let line = this.#lines.get(key);
    if (!line) {
      line = new Line(() => this.#lines.delete(key));
      this.#lines.set(key, line);
    }
    const place = new Place(line, this.pollMs, arrived, hold);
    line.add(place);
    // Joined after the stop began, or after a release it may have missed (any run's: one try more at worst):
    // its wait ends at once.
    if (this.#closed || this.#releases !== since) place.wake();
    return place;
  }

  /**
   * The room a call of the run that came at `arrived` must leave, as it is admitted outside the line: what
   * the first in line will hold, when that one came before it (a gateway's retry backing off, a call woken
   * but not yet admitted). Null: nobody ahead of it waits.
   */
  toLeave(workspace: string, runId: string, arrived: number): RunHold | null {
    const first = this.#lines.get(lineKey(workspace, runId))?.first;
    return first && first.arrived < arrived ? first.hold : null;
  }

  /** A call of the run let its holds go (or the run was killed, or unkilled): the first in line tries now. */
  released(workspace: string, runId: string): void {
    this.#releases++;
    this.#lines.get(lineKey(workspace, runId))?.first.wake();
  }

  /** At shutdown: every wait ends now, and any begun later ends at once. */
  close(): void {
    this.#closed = true;
    for (const line of this.#lines.values()) for (const place of line.places) place.wake();
  }
}

/** A call's place in its run's line. */
export class Place {
  /** Ends the wait in progress; null between waits. */
  #wake: (() => void) | null = null;
  /** Woken between waits: the next ends at once. */
  #woken = false;
  /** Its call's last refusal, and how many of its line's had been heard by then (Line.heardCount). */
  #heard: HeldCeiling | null = null;
  #heardAt = 0;

  constructor(
    private readonly line: Line,
    private readonly pollMs: number,
    /** Its call's arrival (RunLines.arrival): its place in line. */
    readonly arrived: number,
    /** What its call holds once admitted (RunLines.toLeave); null: not known. */
    readonly hold: RunHold | null,
  ) {}

  get first(): boolean {
    return this.line.first === this;
  }

  /**
   * The figures its call's refusal tells (a call out of time behind others has not tried since it joined):
   * the run's as its line heard them last, when a refusal for the run's holds alone came after this call's
   * own last one, else that one's. A refusal for the room its call had to leave (`kept`) is that call's own:
   * its figures say that call's hold fills what is left, which another's need not.
   */
  get lastHeard(): HeldCeiling {
    return this.line.heardCount > this.#heardAt ? this.line.lastHeard! : this.#heard!;
  }

  /** Its call was refused again on these figures (or joined, refused on them). */
  heard(held: HeldCeiling): void {
    if (held.kept === undefined) this.line.heard(held);
    this.#heard = held;
    this.#heardAt = this.line.heardCount;
  }

  /**
   * Waits for this call's next try: first in line, until woken or for `pollMs`; behind others, until woken
   * (it became first, its client left, the gateway stops). Never past `until`, a performance.now() time:
   * a monotonic clock, so a wall-clock step (NTP) neither lengthens nor cuts the wait.
   */
  next(until: number): Promise<void> {
    if (this.#woken) {
      this.#woken = false;
      return Promise.resolve();
    }
    const left = Math.max(0, until - performance.now());
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
    if (!this.line.remove(this)) return;
    if (wasFirst && this.line.places.size) this.line.first.wake();
  }
}

/** A run's waiting calls, in the order they came. */
class Line {
  readonly places = new Set<Place>();
  #lastHeard: HeldCeiling | null = null;
  #heardCount = 0;
  /** The latest arrival that joined: only a call that came before it is not simply the last in line. */
  #latest = 0;

  constructor(private readonly emptied: () => void) {}

  /** The first in line (a line is dropped once empty). */
  get first(): Place {
    return this.places.values().next().value!;
  }

  /** Behind every call that came no later than it, ahead of those that came after. */
  add(place: Place): void {
    const behind =
      place.arrived < this.#latest ? [...this.places].filter((p) => p.arrived > place.arrived) : NOBODY;
    this.places.add(place);
    for (const p of behind) {
      this.places.delete(p);
      this.places.add(p); // at the end again, in their order
    }
    this.#latest = Math.max(this.#latest, place.arrived);
  }

  /**
   * The run's figures in the last refusal of a call in line for the run's holds alone (no `kept`): true of
   * every call in it, the run being full for any.
   */
  get lastHeard(): HeldCeiling | null {
    return this.#lastHeard;
  }

  /** How many of those it has heard: a place tells by it whether one came after its own call's refusal. */
  get heardCount(): number {
    return this.#heardCount;
  }

  heard(held: HeldCeiling): void {
    this.#lastHeard = held;
    this.#heardCount++;
  }

  /** False when it was not in line (left already). */
  remove(place: Place): boolean {
    if (!this.places.delete(place)) return false;
    if (!this.places.size) this.emptied();
    return true;
  }
}

const NOBODY: readonly Place[] = [];

const lineKey = (workspace: string, runId: string) => `${workspace}\u0000${runId}`;
