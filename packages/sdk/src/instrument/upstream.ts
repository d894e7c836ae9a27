import { streamOptionsUpstream } from "@tollgate/core";

/** What is read of a provider SDK's client (openai-node's, its AzureOpenAI's) to name where it sends. */
interface ClientLike {
  baseURL?: unknown;
  /** AzureOpenAI's. */
  apiVersion?: unknown;
  _options?: { defaultQuery?: Record<string, unknown> };
}

/**
 * Where a resource's (`client.chat.completions`') request goes, as far as what it takes differs: its
 * client's base URL, and the `api-version` it names (Azure OpenAI's: the request's own query, else its
 * client's). Null when the resource's client cannot be read.
 */
export function upstreamOf(resource: unknown, options: unknown): string | null {
  const client = (resource as { _client?: ClientLike } | null)?._client;
  if (typeof client?.baseURL !== "string") return null;
  const query = (options as { query?: Record<string, unknown> } | null | undefined)?.query;
  const version =
    query?.["api-version"] ?? client._options?.defaultQuery?.["api-version"] ?? client.apiVersion;
  return streamOptionsUpstream(client.baseURL, typeof version === "string" ? version : null);
}
