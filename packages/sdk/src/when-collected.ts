/**
 * What is done once an object the app dropped is garbage-collected: a generator or stream left unfinished
 * (neither read to its end nor closed) that nothing can read any more.
 */
const collected = new FinalizationRegistry<() => void>((then) => then());

/**
 * Runs `then` once `dropped` is collected, unless `token` is passed to notWhenCollected first. `then` must
 * hold no reference to `dropped`, nor be a closure of a scope any of whose closures does: it would keep
 * `dropped` from ever being collected.
 */
export function whenCollected(dropped: object, then: () => void, token?: object): void {
  collected.register(dropped, then, token);
}

/** What was to run once its object was collected (registered with `token`) no longer does. */
export function notWhenCollected(token: object): void {
  collected.unregister(token);
}
