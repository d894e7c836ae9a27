// A local stand-in for the OpenAI and Anthropic APIs, so the examples run on a machine without
// provider keys: canned replies shaped like the real ones, with usage. With OPENAI_API_KEY /
// ANTHROPIC_API_KEY set, the examples call the real providers instead and this is not used.
import { createServer } from "node:http";

const chat = (model) => ({
  id: "chatcmpl-standin",
  object: "chat.completion",
  created: Math.floor(Date.now() / 1000),
  model,
  choices: [
    {
      index: 0,
      message: { role: "assistant", content: "Reset it from Settings → Security." },
      finish_reason: "stop",
    },
  ],
  usage: {
    prompt_tokens: 1850,
    completion_tokens: 42,
    total_tokens: 1892,
    prompt_tokens_details: { cached_tokens: 1536 },
  },
});
const message = (model) => ({
  id: "msg_standin",
  type: "message",
  role: "assistant",
  model,
  content: [{ type: "text", text: "Here is a summary of the ticket." }],
  stop_reason: "end_turn",
  usage: {
    input_tokens: 320,
    cache_creation_input_tokens: 2048,
    cache_read_input_tokens: 0,
    output_tokens: 95,
  },
});

function reply(path, body) {
  if (path.endsWith("/chat/completions")) return chat(body.model);
  if (path.endsWith("/messages")) return message(body.model);
  return null;
}

/** Starts the stand-in on 127.0.0.1; resolves its origin and a close function. */
export async function startStandIn() {
  const server = createServer((req, res) => {
    let text = "";
    req.on("data", (c) => (text += c));
    req.on("end", () => {
      const out = reply(req.url ?? "", JSON.parse(text || "{}"));
      res.writeHead(out ? 200 : 404, { "content-type": "application/json", "x-request-id": "req_standin" });
      res.end(JSON.stringify(out ?? { error: { message: `no stand-in for ${req.url}` } }));
    });
  });
  await new Promise((r) => server.listen(0, "127.0.0.1", r));
  return { origin: `http://127.0.0.1:${server.address().port}`, close: () => server.close() };
}
