#!/usr/bin/env node
// How long the gateway's event loop is held reading one reply's usage, side by side in one process:
// (a) the whole body decoded and parsed (what the gateway did before), (b) the reply skimmed first, its
// payloads (image, audio and embedding bytes) left unread (what it does now). Every other call through
// the gateway waits that long. Replies: ten 4 MB images (Images API), a Responses reply whose image
// generation tool made a 3 MB image, 2,048 embeddings as base64 (the openai SDK's default) and 512 as
// numbers, a streamed response's final event carrying its image, and an ordinary 2.7 KB chat reply (not
// skimmed: below 64 KiB the parse is as before). Checks that both ways read the same usage. Then requests:
// a chat request with a 5 MB base64 image and an Anthropic one with a 5 MB image, parsed and held by a
// budget's worst case, whole against skimmed (its media left as marks), and an embeddings batch of 2,048
// texts (4 MB, its texts left out); checks the holds are the same.
// Usage: npm run bench:reply-reading [-- --runs 7]
import { readFileSync } from "node:fs";
import { fileURLToPath } from "node:url";
import { isDeepStrictEqual } from "node:util";
import { createSseUsageExtractor, extractFromResponse, skimJson, worstCaseUsage } from "@tollgate/core";
import { replyJson } from "../packages/server/dist/gateway/reply-reading.js";
import { parseJsonObject, parseModelRequest } from "../packages/server/dist/gateway/request-body.js";
import { benchArgs } from "./args.mjs";

const { values: argv } = benchArgs(import.meta.url, { runs: { type: "string", default: "7" } });
const RUNS = Number(argv.runs);

const shared = (rel) =>
  readFileSync(fileURLToPath(new URL(`../../shared/fixtures/providers/${rel}`, import.meta.url)), "utf8");
const local = (rel) =>
  readFileSync(fileURLToPath(new URL(`../packages/core/test/fixtures/${rel}`, import.meta.url)), "utf8");
/** Base64 of `chars` characters (a real image's bytes are megabytes; the fixtures' are cut short). */
const b64 = (chars) => "iVBORw0KGgoAAAANSUhEUgAA".repeat(Math.ceil(chars / 24)).slice(0, chars);

const images = JSON.parse(local("openai-images/images-generation.gpt-image-1.reference.json"));
images.data = Array.from({ length: 10 }, () => ({ ...images.data[0], b64_json: b64(4_000_000) }));
const tool = JSON.parse(local("openai-images/responses.image-tool.gpt-5-nano.tool-usage.json"));
for (const item of tool.output) if (item.type === "image_generation_call") item.result = b64(3_000_000);
const embeddings = JSON.parse(shared("openai/embeddings.text-embedding-3-small.json"));
const vectors = (n, as) =>
  Array.from({ length: n }, (_, index) => ({
    object: "embedding",
    index,
    embedding:
      as === "base64" ? b64(16_384) : Array.from({ length: 3072 }, (_, i) => Math.sin(index + i) / 7),
  }));
const stream = local("openai-images/responses.stream.image-tool.gpt-5-nano.tool-usage.sse").replace(
  /"(result|partial_image_b64)":"[^"]*"/g,
  (_, key) => `"${key}":"${b64(3_000_000)}"`,
);

const replies = [
  ["images: 10 × 4 MB", "openai.images", images],
  ["responses: image tool, 3 MB", "openai.responses", tool],
  ["embeddings: 2,048 base64", "openai.embeddings", { ...embeddings, data: vectors(2048, "base64") }],
  ["embeddings: 512 as numbers", "openai.embeddings", { ...embeddings, data: vectors(512, "numbers") }],
  [
    "chat: 2.7 KB (not skimmed)",
    "openai.chat",
    JSON.parse(shared("openai/chat-completion.gpt-4.1-nano.json")),
  ],
];

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
/** Median ms of `fn` over RUNS runs (a and b take turns, so both see the same machine). */
function time(fn) {
  const t0 = performance.now();
  const out = fn();
  return [performance.now() - t0, out];
}
const fmt = (ms) => (ms < 1 ? ms.toFixed(3) : ms.toFixed(1)).padStart(8);

console.log(`runs: ${RUNS} (medians); node ${process.version}`);
console.log(`${"reply".padEnd(30)}${"MB".padStart(7)}   (a) whole ms  (b) skim ms   a/b   same usage`);
let failed = false;
const row = (name, bytes, a, b, same) => {
  failed ||= !same;
  console.log(
    `${name.padEnd(30)}${(bytes / 1e6).toFixed(1).padStart(7)}   ${fmt(median(a))}      ${fmt(median(b))}   ${(median(a) / median(b)).toFixed(1).padStart(5)}×   ${same ? "yes" : "NO"}`,
  );
};

for (const [name, api, reply] of replies) {
  const body = Buffer.from(JSON.stringify(reply));
  const a = [];
  const b = [];
  let same = true;
  for (let i = 0; i < RUNS; i++) {
    const [ta, whole] = time(() => extractFromResponse(api, JSON.parse(body.toString("utf8"))));
    const [tb, skimmed] = time(() => extractFromResponse(api, replyJson(body, null)));
    a.push(ta);
    b.push(tb);
    same &&= isDeepStrictEqual(whole, skimmed);
  }
  row(name, body.length, a, b, same);
}

// A stream: the extractor parses only events that carry usage, here the final one with the image in it.
{
  const final = stream.split("\n\n").find((e) => e.includes('"response.completed"'));
  const data = final.slice(final.indexOf("data: ") + 6);
  const a = [];
  const b = [];
  let same = true;
  for (let i = 0; i < RUNS; i++) {
    const [ta, whole] = time(() => JSON.parse(data).response);
    const [tb, skimmed] = time(() => JSON.parse(skimJson(data)).response);
    a.push(ta);
    b.push(tb);
    same &&= isDeepStrictEqual([whole.usage, whole.tool_usage], [skimmed.usage, skimmed.tool_usage]);
  }
  const x = createSseUsageExtractor("openai.responses");
  x.push(stream);
  same &&= x.result()?.tool_model_call?.usage_raw?.output_tokens === 272;
  row("stream: final event, 3 MB", Buffer.byteLength(data), a, b, same);
}
// Requests: parsed and held (the worst case a budget holds) before they go upstream.
const requests = [
  [
    "request: chat, 5 MB image",
    "openai.chat",
    {
      model: "gpt-4o",
      messages: [
        {
          role: "user",
          content: [
            { type: "text", text: "What is in this image?" },
            { type: "image_url", image_url: { url: `data:image/png;base64,${b64(5_000_000)}` } },
          ],
        },
      ],
    },
  ],
  [
    "request: anthropic, 5 MB image",
    "anthropic.messages",
    {
      model: "claude-sonnet-4-5",
      max_tokens: 1024,
      messages: [
        {
          role: "user",
          content: [
            { type: "image", source: { type: "base64", media_type: "image/png", data: b64(5_000_000) } },
            { type: "text", text: "Describe it." },
          ],
        },
      ],
    },
  ],
  [
    "request: embeddings, 2,048 texts",
    "openai.embeddings",
    {
      model: "text-embedding-3-small",
      input: Array.from({ length: 2048 }, (_, i) => `chunk ${i}: ${"The quick brown fox. ".repeat(100)}`),
    },
  ],
];
for (const [name, api, request] of requests) {
  const body = Buffer.from(JSON.stringify(request));
  const raw = { byteLength: body.length, includes: (s) => body.includes(s) };
  const a = [];
  const b = [];
  let same = true;
  for (let i = 0; i < RUNS; i++) {
    const [ta, whole] = time(() => worstCaseUsage(api, parseJsonObject(body), raw, 200_000));
    const [tb, skimmed] = time(() => {
      const read = parseModelRequest(body, "application/json", api);
      return worstCaseUsage(api, read.fields, { ...raw, skimMark: read.skimMark }, 200_000);
    });
    a.push(ta);
    b.push(tb);
    same &&= isDeepStrictEqual(whole, skimmed);
  }
  row(name, body.length, a, b, same);
}
console.log("(requests: 'same usage' is the same worst case, the hold a budget takes)");
if (failed) {
  console.error("FAIL: the skimmed read gave other usage than the whole parse");
  process.exit(1);
}
