/** The longest wait a Node timer keeps: one set longer fires after 1 ms (a TimeoutOverflowWarning). */
export const MAX_TIMER_MS = 2 ** 31 - 1;
