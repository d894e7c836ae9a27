// wrapAnthropic(new Anthropic()): messages.create and the messages.stream() helper are recorded, cache
// writes and reads priced exactly. Run `npx tollgate serve` first, then: node examples/wrap-anthropic.mjs
import Anthropic from "@anthropic-ai/sdk";
import { configure, flush, withAttribution, wrapAnthropic } from "@tollgate/sdk";
import { startStandIn } from "./stand-in-provider.mjs";
import { tollgateEnv } from "./tollgate-env.mjs";

const standIn = process.env.ANTHROPIC_API_KEY ? null : await startStandIn();
configure(tollgateEnv());
const anthropic = wrapAnthropic(
  new Anthropic(standIn ? { apiKey: "stand-in", baseURL: standIn.origin } : {}),
);

const summary = await withAttribution(
  { customerId: "globex", feature: "ticket-summary", tags: ["batch-job"] },
  () =>
    anthropic.messages.create({
      model: "claude-sonnet-4-5",
      max_tokens: 512,
      messages: [{ role: "user", content: "Summarize this ticket thread: …" }],
    }),
);
console.log(summary.content[0].text);

const delivered = await flush();
console.log(
  delivered
    ? "records delivered: see `npx tollgate spend --by feature`"
    : "Tollgate unreachable: records not delivered",
);
standIn?.close();
process.exitCode = delivered ? 0 : 1;
