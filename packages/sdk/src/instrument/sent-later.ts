/** What is read of a provider SDK's APIPromise (openai-node and anthropic-sdk share the design). */
interface ApiPromiseLike<T> extends Promise<T> {
  parse(): Promise<T>;
  asResponse(): Promise<Response>;
  withResponse(): Promise<{ data: T; response: Response }>;
  _thenUnwrap?(transform: (data: T, props: unknown) => unknown): ApiPromiseLike<unknown>;
  _responseProps?(): Promise<unknown>;
}

/**
 * What a wrapped method returns for a call that waits before it is sent (for room under its agent run's
 * ceilings): the provider SDK's APIPromise, as it will be once `send` makes it, read the same ways (then,
 * withResponse, asResponse, and the SDKs' own helpers' `_thenUnwrap` and `_responseProps`). Lazy as an
 * APIPromise is: only a read parses the reply. A refused wait (`ready` rejects) rejects every read with its error.
 */
export function sentLater(ready: Promise<unknown>, send: () => unknown): ApiPromiseLike<unknown> {
  // Boxed: an APIPromise is a thenable, which a promise of it would parse at once.
  const sent = ready.then(() => ({ call: send() as ApiPromiseLike<unknown> }));
  return new SentLater(sent);
}

class SentLater<T> extends Promise<T> implements ApiPromiseLike<T> {
  /** then() and friends return plain promises (of the parse), as an APIPromise's do. */
  static override get [Symbol.species]() {
    return Promise;
  }

  readonly #sent: Promise<{ call: ApiPromiseLike<T> }>;

  constructor(sent: Promise<{ call: ApiPromiseLike<T> }>) {
    // As an APIPromise: resolved to nothing; every read goes through parse().
    super((resolve) => resolve(undefined as T));
    this.#sent = sent;
    sent.catch(() => {}); // unread, a refusal is nobody's to handle (each read gets it)
  }

  parse(): Promise<T> {
    return this.#sent.then(({ call }) => call.parse());
  }

  asResponse(): Promise<Response> {
    return this.#sent.then(({ call }) => call.asResponse());
  }

  withResponse(): Promise<{ data: T; response: Response }> {
    return this.#sent.then(({ call }) => call.withResponse());
  }

  _thenUnwrap(transform: (data: T, props: unknown) => unknown): ApiPromiseLike<unknown> {
    return new SentLater(this.#sent.then(({ call }) => ({ call: call._thenUnwrap!(transform) })));
  }

  /** Anthropic's message threads (and the tool runner over one) read a turn's response this way. */
  _responseProps(): Promise<unknown> {
    return this.#sent.then(({ call }) => call._responseProps!());
  }

  // biome-ignore lint/suspicious/noThenProperty: read as an APIPromise is, through its parse (as the SDKs' own)
  override then<A = T, B = never>(
    onfulfilled?: ((value: T) => A | PromiseLike<A>) | null,
    onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null,
  ): Promise<A | B> {
    return this.parse().then(onfulfilled, onrejected);
  }

  override catch<B = never>(onrejected?: ((reason: unknown) => B | PromiseLike<B>) | null): Promise<T | B> {
    return this.parse().catch(onrejected);
  }

  override finally(onfinally?: (() => void) | null): Promise<T> {
    return this.parse().finally(onfinally);
  }
}
