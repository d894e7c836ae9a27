import Anthropic from "@anthropic-ai/sdk";
import type { CallRecordInput } from "@tollgate/core";
import OpenAI from "openai";
import { wrapAnthropic, wrapOpenAI } from "../src/index.js";

/** The openai and @anthropic-ai/sdk clients, wrapped, against the mock upstream at `url`, no retries. */
export function wrappedClients(url: string, sink: (r: CallRecordInput) => void) {
  return {
    openai: wrapOpenAI(new OpenAI({ apiKey: "sk-test", maxRetries: 0, baseURL: `${url}/v1` }), { sink }),
    anthropic: wrapAnthropic(new Anthropic({ apiKey: "sk-ant-test", maxRetries: 0, baseURL: url }), { sink }),
  };
}
