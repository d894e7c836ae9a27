// One line at the call site: wrapOpenAI(new OpenAI()). Every call is recorded with its exact cost and
// the attribution of the scope it runs in. Run `npx tollgate serve` first, then: node examples/wrap-openai.mjs

import { configure, flush, traced, withAttribution, wrapOpenAI } from "@tollgate/sdk";
import OpenAI from "openai";
import { startStandIn } from "./stand-in-provider.mjs";
import { tollgateEnv } from "./tollgate-env.mjs";

const standIn = process.env.OPENAI_API_KEY ? null : await startStandIn();
configure(tollgateEnv());
const openai = wrapOpenAI(new OpenAI(standIn ? { apiKey: "stand-in", baseURL: `${standIn.origin}/v1` } : {}));

// Deep in the app: no attribution passed down, it comes from the enclosing scope.
async function suggestFix(ticket) {
  const r = await openai.chat.completions.create({
    model: "gpt-4o-mini",
    messages: [{ role: "user", content: `Suggest a fix: ${ticket}` }],
  });
  return r.choices[0].message.content;
}

await withAttribution(
  { userId: "u-42", customerId: "acme", feature: "support-chat", promptVersion: "v3" },
  () =>
    traced(
      async () => {
        console.log(await suggestFix("cannot log in"));
        await traced(() => suggestFix("password reset mail never arrives"), {
          name: "follow-up",
          kind: "tool",
        });
      },
      { name: "answer-ticket", kind: "agent" },
    ),
);

const delivered = await flush(); // before a short-lived process (or serverless handler) exits
console.log(
  delivered
    ? "records delivered: see `npx tollgate spend --by customer`"
    : "Tollgate unreachable: records not delivered",
);
standIn?.close();
process.exitCode = delivered ? 0 : 1;
