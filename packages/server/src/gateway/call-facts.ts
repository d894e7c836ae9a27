import type { CallFacts } from "@tollgate/core";
import type { Attribution } from "./headers.js";

/**
 * The call's facts for scope matching, in one fixed shape: attribution parsed from headers has whatever
 * keys a client sent, and matching reads every scope field of every budget from it.
 */
export function callFacts(a: Attribution, model: string, provider: string, keyId: string | null): CallFacts {
  return {
    user_id: a.user_id ?? null,
    customer_id: a.customer_id ?? null,
    feature: a.feature ?? null,
    deployment: a.deployment ?? null,
    prompt_version: a.prompt_version ?? null,
    agent_run_id: a.agent_run_id ?? null,
    agent_type: a.agent_type ?? null,
    session_id: a.session_id ?? null,
    route: a.route ?? null,
    variant: a.variant ?? null,
    model,
    provider,
    key_id: keyId,
    tags: a.tags ?? null,
  };
}
