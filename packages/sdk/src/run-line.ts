/** How a wait in a run's line ended: admitted, or its call's signal aborted first (nothing admitted). */
export type Admission = "admitted" | "aborted";

/** Tries a waiting call's admission: true once admitted, false to wait on; throws when it is refused. */
export type TryAdmit = (final: boolean) => boolean;

interface Waiter {
  tryAdmit: TryAdmit;
  /** Its hold is taken only after its admission (`run.llm`'s, by the wrapped call inside). */
  holdsLater: boolean;
  end(outcome: Admission | { refused: unknown }): void;
}

/**
 * The calls of one in-process agent run that wait for room under its cost or token ceiling (its calls in
 * flight hold the rest), as the gateway's run lines serve them: in arrival order, the first trying again as
 * soon as a call of the run settles or the run is killed (`wake`), then the next while they get in (room
 * does not depend on the call that asks: core's heldCeiling reads the run alone). A wait ends admitted,
 * refused (its try throws: the run was killed), at its deadline (a last try that admits or throws), or
 * when its call's signal aborts. A call admitted that takes its hold only later (`holdsLater`) is the last
 * one a wake lets in: the room it leaves is not known before the next.
 */
export class RunLine {
  readonly #waiting: Waiter[] = [];

  wait(tryAdmit: TryAdmit, ms: number, holdsLater: boolean, signal?: AbortSignal): Promise<Admission> {
    return new Promise<Admission>((resolve, reject) => {
      if (signal?.aborted) return resolve("aborted");
      const onAbort = () => {
        waiter.end("aborted");
        this.wake(); // it may have been first
      };
      const timer = setTimeout(() => {
        if (this.#serve(waiter, true)) this.wake();
      }, ms);
      const waiter: Waiter = {
        tryAdmit,
        holdsLater,
        end: (outcome) => {
          clearTimeout(timer);
          signal?.removeEventListener("abort", onAbort);
          this.#waiting.splice(this.#waiting.indexOf(waiter), 1);
          if (typeof outcome === "string") resolve(outcome);
          else reject(outcome.refused);
        },
      };
      signal?.addEventListener("abort", onAbort, { once: true });
      this.#waiting.push(waiter);
    });
  }

  /** A call of the run settled (or the run was killed): the first in line tries again, then the next. */
  wake(): void {
    for (let first = this.#waiting[0]; first && this.#serve(first, false); first = this.#waiting[0]);
  }

  /** One try of `w`; true when the next in line may try now (`w` was refused, or admitted holding its own). */
  #serve(w: Waiter, final: boolean): boolean {
    let admitted: boolean;
    try {
      admitted = w.tryAdmit(final);
    } catch (refused) {
      w.end({ refused });
      return true;
    }
    if (admitted) w.end("admitted");
    return admitted && !w.holdsLater;
  }
}
