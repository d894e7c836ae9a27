#!/usr/bin/env node
// OpenAI Realtime sessions (WebSocket) through the gateway: --sessions clients each send an audio chunk
// (an input_audio_buffer.append of --chunk-kb base64) every 20 ms, as a live microphone does, for --seconds,
// (a) straight to the mock upstream and (b) through `tollgate serve`, taking turns --runs times. The mock
// echoes each chunk back: the round trip of one message, direct and through the gateway, gives the
// latency the gateway adds each way and back. Reports added p50/p99, the gateway's CPU per message relayed
// (each way counts), and its RSS. Each session ends with one response, recorded: the count is checked.
import { WebSocket } from "ws";
import { benchArgs } from "./args.mjs";
import { pct, procCpuMs, procRssMb, RssSampler, sleep } from "./gateway/load.mjs";
import { shutdown, startMockScript, startTollgate } from "./gateway/processes.mjs";

const { values: argv } = benchArgs(import.meta.url, {
  sessions: { type: "string", default: "20" },
  seconds: { type: "string", default: "8" },
  "chunk-kb": { type: "string", default: "4" },
  runs: { type: "string", default: "2" },
});
const SESSIONS = Number(argv.sessions);
const SECONDS = Number(argv.seconds);
const RUNS = Number(argv.runs);
const AUDIO = Buffer.alloc(Number(argv["chunk-kb"]) * 768, 7).toString("base64"); // ~chunk-kb of base64
const EVERY_MS = 20;

async function startMock() {
  const { port } = await startMockScript(new URL("./realtime/mock.mjs", import.meta.url));
  return `ws://127.0.0.1:${port}`;
}

/** One session: a chunk every 20 ms for the run, each one's round trip timed; then one response. */
async function session(url, until, rtts) {
  const ws = new WebSocket(`${url}/v1/realtime?model=gpt-realtime`, {
    headers: { authorization: "Bearer sk-bench-0000", "x-tollgate-feature": "bench-realtime" },
    perMessageDeflate: false,
  });
  const sent = new Map();
  let n = 0;
  let done = null;
  ws.on("message", (data) => {
    const text = String(data);
    if (text.includes('"response.done"')) return done?.();
    const id = /"event_id":"b(\d+)"/.exec(text.slice(0, 80))?.[1];
    const t0 = id && sent.get(id);
    if (t0) {
      rtts.push(performance.now() - t0);
      sent.delete(id);
    }
  });
  await new Promise((resolve, reject) => {
    ws.once("open", resolve);
    ws.once("error", reject);
  });
  await sleep(Math.random() * EVERY_MS); // spread the sessions over the 20 ms
  while (Date.now() < until) {
    const id = String(n++);
    sent.set(id, performance.now());
    ws.send(`{"event_id":"b${id}","type":"input_audio_buffer.append","audio":"${AUDIO}"}`);
    await sleep(EVERY_MS);
  }
  await sleep(200);
  const responded = new Promise((r) => {
    done = r;
  });
  ws.send(JSON.stringify({ type: "response.create" }));
  await responded;
  ws.close();
  return n;
}

async function run(url, pid) {
  const rtts = [];
  const until = Date.now() + SECONDS * 1000;
  const cpu0 = pid ? procCpuMs(pid) : 0;
  const counts = await Promise.all(Array.from({ length: SESSIONS }, () => session(url, until, rtts)));
  const cpu = pid ? procCpuMs(pid) - cpu0 : 0;
  const messages = counts.reduce((a, b) => a + b, 0);
  rtts.sort((a, b) => a - b);
  return { p50: pct(rtts, 50), p99: pct(rtts, 99), messages, cpuPerMsg: pid ? cpu / (2 * messages) : 0 };
}

const mockUrl = await startMock();
const tollgate = await startTollgate(mockUrl.replace("ws:", "http:"));
const tollgateUrl = tollgate.url.replace("http:", "ws:");
const rss = new RssSampler(100);
rss.watch(tollgate.pid);
console.log(
  `bench:realtime: ${SESSIONS} sessions × a ${AUDIO.length}-byte chunk every ${EVERY_MS} ms (${(SESSIONS * 1000) / EVERY_MS} messages/s each way), ${SECONDS} s per run, ${RUNS} runs taking turns`,
);
const f3 = (n) => n.toFixed(3);
const rows = [];
for (let i = 0; i < RUNS; i++) {
  const direct = await run(mockUrl, null);
  const through = await run(tollgateUrl, tollgate.pid);
  rows.push({ direct, through });
  console.log(
    `run ${i + 1}: direct p50 ${f3(direct.p50)} / p99 ${f3(direct.p99)} ms; through tollgate p50 ${f3(through.p50)} / p99 ${f3(through.p99)} ms` +
      ` → added p50 +${f3(through.p50 - direct.p50)} / p99 +${f3(through.p99 - direct.p99)} ms; ${through.messages} chunks,` +
      ` ${f3(through.cpuPerMsg)} CPU-ms per message relayed`,
  );
}
// Every session's one response is a call recorded: read back through the API.
await sleep(1500);
const res = await fetch(`${tollgate.url}/api/events?feature=bench-realtime&limit=1000`, {
  headers: { authorization: `Bearer ${tollgate.token}` },
});
const events = (await res.json()).events ?? [];
console.log(
  `recorded: ${events.length} calls (expected ${RUNS * SESSIONS}), $${events.reduce((a, e) => a + Number(e.cost_nanousd), 0) / 1e9} in all`,
);
console.log(`tollgate RSS: max ${procRssMb(tollgate.pid) && rss.overall(tollgate.pid).toFixed(1)} MB`);
await shutdown();
