import { AsyncLocalStorage } from "node:async_hooks";
import {
  type AgentCeilingsInput,
  AgentCeilingsSchema,
  type Api,
  admitsNext,
  type Ceilings,
  compileCeilings,
  crossedCeiling,
  emptyRunUsage,
  extractFromResponse,
  formatUsd,
  type KillReason,
  type NormalizedUsage,
  PricingEngine,
  type RunUsage,
  type ServedAs,
  servedAsOf,
  toolCallModel,
  totalTokens,
  uuidv7,
} from "@tollgate/core";

/** Thrown by the next guarded LLM or tool call of a run that crossed a ceiling (or was killed by hand). */
export class AgentRunKilledError extends Error {
  override name = "AgentRunKilledError";
  readonly code = "agent_run_killed";
  /** The ceiling crossed ("manual" for a kill by hand), the run's count of it, and its limit. */
  readonly ceiling: KillReason["ceiling"];
  readonly value: string;
  readonly limit: string;
  constructor(
    readonly runId: string,
    readonly agentType: string,
    readonly reason: KillReason,
  ) {
    super(
      reason.ceiling === "manual"
        ? `agent run ${runId} (${agentType}) was killed: ${reason.value}`
        : `agent run ${runId} (${agentType}) crossed its ${reason.ceiling} ceiling (${reason.value} of ${reason.limit})`,
    );
    this.ceiling = reason.ceiling;
    this.value = reason.value;
    this.limit = reason.limit;
  }
}

export interface AgentRunOptions {
  type: string;
  /** Defaults to a fresh uuid v7. */
  id?: string;
  limits: AgentCeilingsInput;
  /** Prices LLM replies for the cost ceiling; the built-in genai-prices data by default. */
  pricing?: PricingEngine;
  /** Provider the replies are priced as, when an LLM call does not say (default: from the api). */
  provider?: string;
}

export interface LlmCallOptions {
  /** Provider to price as; defaults to the api's family (openai, anthropic, google, bedrock). */
  provider?: string;
  /** The model, when the reply does not carry it (Bedrock Converse). */
  model?: string;
}

let defaultEngine: PricingEngine | null = null;
/** One built-in engine for all runs that bring none (its price index is built once). */
export function builtinEngine(): PricingEngine {
  defaultEngine ??= new PricingEngine();
  return defaultEngine;
}

/**
 * One agent run's in-process guard: the same ceilings and limit math as the gateway (core's
 * `admitsNext` / `crossedCeiling`), for loops that never pass through it. Every guarded LLM or tool call
 * checks first and counts after; once a ceiling is crossed, every later guarded call throws.
 */
export class AgentRun {
  readonly id: string;
  readonly type: string;
  readonly #ceilings: Ceilings;
  readonly #engine: PricingEngine;
  readonly #usage: RunUsage;
  readonly #depth = new AsyncLocalStorage<number>();
  #killed: KillReason | null = null;

  constructor(opts: AgentRunOptions) {
    const parsed = AgentCeilingsSchema.safeParse(opts.limits);
    if (!parsed.success)
      throw new TypeError(
        `agentRun limits: ${parsed.error.issues.map((i) => `${i.path.join(".")}: ${i.message}`).join("; ")}`,
      );
    this.id = opts.id ?? uuidv7();
    this.type = opts.type;
    this.#ceilings = compileCeilings(parsed.data);
    this.#engine = opts.pricing ?? builtinEngine();
    this.#usage = emptyRunUsage(Date.now());
  }

  get usage(): Readonly<RunUsage> {
    return { ...this.#usage };
  }

  get killed(): KillReason | null {
    return this.#killed;
  }

  get costUsd(): string {
    return formatUsd(this.#usage.cost_nanousd);
  }

  /** Attribution headers for calls that go through the gateway, so it counts them against the same run. */
  headers(): Record<string, string> {
    return {
      "x-tollgate-agent-run-id": this.id,
      "x-tollgate-agent-type": this.type,
      "x-tollgate-span-depth": String(this.#currentDepth() + 1),
    };
  }

  /** Stops the run by hand: the next guarded call throws. */
  kill(reason = "killed by hand"): void {
    this.#killed ??= { ceiling: "manual", value: reason, limit: "-", at: Date.now() };
  }

  /**
   * Runs one LLM call under the guard: refused before it starts when the run is over a ceiling; its reply's
   * usage (non-streamed JSON body of `api`) is counted and priced after.
   */
  async llm<T>(api: Api, call: () => Promise<T>, opts: LlmCallOptions = {}): Promise<T> {
    this.beginLlmCall();
    // A wrapped client inside counts nothing itself: this call is already counted here.
    const reply = await counted.run(this, () => this.#nested(call));
    this.#countReply(api, reply, opts);
    return reply;
  }

  /**
   * Checks and counts one LLM call about to be made (what wrapped clients do for every call inside the
   * run); its usage follows through `recordUsage`. Throws AgentRunKilledError when the run is over.
   */
  beginLlmCall(): void {
    this.#admit("llm");
    this.#usage.llm_calls++;
  }

  /**
   * Counts usage of an LLM call made elsewhere (a stream you read yourself, another client); priced on the
   * service tier the provider says it served, when given (OpenAI's flex is billed at batch rates), and at
   * the batch rate for a call a batch ran; at the prices of `at` (the call's time; default now).
   */
  recordUsage(
    usage: NormalizedUsage,
    cost:
      | {
          provider: string;
          model: string;
          serviceTier?: string | null;
          servedAs?: ServedAs | null;
          batch?: boolean;
          at?: number;
        }
      | { nanousd: bigint },
  ): void {
    const nanousd =
      "nanousd" in cost
        ? cost.nanousd
        : this.#engine.price({ ...cost, usage, at: cost.at ?? Date.now() }).cost.total_nanousd;
    this.#usage.cost_nanousd += nanousd;
    this.#usage.total_tokens += totalTokens(usage);
    this.#check();
  }

  /** Tool calls so far, by tool name. */
  readonly toolCalls = new Map<string, number>();

  /** Runs one tool call under the guard (nested calls inside it are one level deeper). */
  async tool<T>(name: string, call: () => Promise<T> | T): Promise<T> {
    this.#admit("tool");
    this.#usage.tool_calls++;
    this.toolCalls.set(name, (this.toolCalls.get(name) ?? 0) + 1);
    return this.#nested(async () => call());
  }

  #currentDepth(): number {
    return this.#depth.getStore() ?? 0;
  }

  #nested<T>(call: () => Promise<T>): Promise<T> {
    const depth = this.#currentDepth() + 1;
    this.#usage.span_depth = Math.max(this.#usage.span_depth, depth);
    return this.#depth.run(depth, call);
  }

  #admit(kind: "llm" | "tool"): void {
    if (!this.#killed)
      this.#killed = admitsNext(this.#usage, this.#ceilings, kind, this.#currentDepth() + 1, Date.now());
    if (this.#killed) throw new AgentRunKilledError(this.id, this.type, this.#killed);
  }

  #check(): void {
    this.#killed ??= crossedCeiling(this.#usage, this.#ceilings, Date.now());
  }

  #countReply(api: Api, reply: unknown, opts: LlmCallOptions): void {
    // openai-node returns the parsed body; withResponse()/asResponse() callers can pass `data` instead.
    const body = (reply as { data?: unknown })?.data ?? reply;
    let extracted: ReturnType<typeof extractFromResponse>;
    try {
      extracted = extractFromResponse(api, body);
    } catch {
      this.#check(); // no usage in the reply (e.g. a stream): counted as a call, priced at zero
      return;
    }
    const provider = opts.provider ?? api.split(".")[0]!;
    const model = extracted.model ?? opts.model ?? "unknown";
    const servedAs = servedAsOf(extracted.usage_raw);
    this.recordUsage(extracted.usage, { provider, model, serviceTier: extracted.service_tier, servedAs });
    // What a hosted tool did on its own model (an image, an advisor's advice), at that model's rates (a call
    // of its own, not another LLM call).
    const tool = extracted.tool_model_call;
    if (tool?.usage) this.recordUsage(tool.usage, { provider, model: toolCallModel(tool, null) });
  }
}

const current = new AsyncLocalStorage<AgentRun>();
/** Set inside `run.llm(…)`: the call there is counted by the run itself. */
const counted = new AsyncLocalStorage<AgentRun>();

/**
 * Runs `fn` as one agent run with in-process ceilings. Inside, `guard.llm(api, () => client.…)` and
 * `guard.tool(name, fn)` are checked before and counted after; the first call past a ceiling throws
 * AgentRunKilledError (so does every later one). `currentAgentRun()` finds the run from anywhere below.
 */
export function agentRun<T>(opts: AgentRunOptions, fn: (guard: AgentRun) => Promise<T> | T): Promise<T> {
  const run = new AgentRun(opts);
  return current.run(run, async () => fn(run));
}

/** The agent run the caller is inside of, if any (for helpers deep in the call tree). */
export function currentAgentRun(): AgentRun | undefined {
  return current.getStore();
}

/**
 * The run a wrapped client's call belongs to, and whether that client should check and count it
 * (not when the app already wraps the call in `run.llm`).
 */
export function agentRunOfCall(): { run: AgentRun; counts: boolean } | undefined {
  const run = current.getStore();
  return run && { run, counts: counted.getStore() !== run };
}
