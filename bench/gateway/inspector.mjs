// The heap of a process started with `--inspect=127.0.0.1:0`, read through the inspector protocol: the
// process under test needs no code or hook of its own for a soak to force a full GC, read what survived
// it, or write a heap snapshot.
import { createWriteStream } from "node:fs";
import WebSocket from "ws";
import { sleep } from "./load.mjs";

/** The inspector's WebSocket URL that node printed on stderr (`Debugger listening on ws://…`), once it has. */
export async function inspectorUrl(stderrTail, timeoutMs = 30_000) {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const m = /Debugger listening on (ws:\/\/\S+)/.exec(stderrTail.text);
    if (m) return m[1];
    if (Date.now() > end)
      throw new Error("the process printed no inspector URL (started without --inspect?)");
    await sleep(50);
  }
}

/** One inspector session: of the process's main thread, or of a worker thread inside it. */
class Session {
  #post;
  #next = 1;
  #waiting = new Map();
  #listeners = new Map();

  /** `post(text)` sends a message of the protocol to the session's thread. */
  constructor(post) {
    this.#post = post;
  }

  /** A message of the protocol from the session's thread. */
  receive(msg) {
    if (msg.id === undefined) return this.#listeners.get(msg.method)?.(msg.params);
    const w = this.#waiting.get(msg.id);
    this.#waiting.delete(msg.id);
    if (msg.error) w?.reject(new Error(`${msg.error.message} (${msg.error.code})`));
    else w?.resolve(msg.result);
  }

  closed() {
    for (const w of this.#waiting.values()) w.reject(new Error("inspector closed"));
    this.#waiting.clear();
  }

  /** Calls `listener` with the parameters of each event `method` (undefined: none any more). */
  on(method, listener) {
    if (listener) this.#listeners.set(method, listener);
    else this.#listeners.delete(method);
  }

  send(method, params = {}) {
    const id = this.#next++;
    return new Promise((resolve, reject) => {
      this.#waiting.set(id, { resolve, reject });
      this.#post(JSON.stringify({ id, method, params }));
    });
  }

  /**
   * The main isolate after a full GC (twice: what the first freed may hold objects only the second frees):
   * `process.memoryUsage()` in MB, and how long the collections paused the process.
   */
  async heapAfterGc() {
    const t0 = performance.now();
    await this.send("HeapProfiler.collectGarbage");
    await this.send("HeapProfiler.collectGarbage");
    const gcMs = performance.now() - t0;
    const { result } = await this.send("Runtime.evaluate", {
      expression: "JSON.stringify(process.memoryUsage())",
      returnByValue: true,
    });
    const mem = JSON.parse(result.value);
    const mb = (v) => v / 1048576;
    return {
      heapUsedMb: mb(mem.heapUsed),
      heapTotalMb: mb(mem.heapTotal),
      externalMb: mb(mem.external),
      arrayBuffersMb: mb(mem.arrayBuffers),
      gcMs,
    };
  }

  /** Writes a heap snapshot of the process to `path` (it pauses the process for a second or more). */
  async writeHeapSnapshot(path) {
    const out = createWriteStream(path);
    this.on("HeapProfiler.addHeapSnapshotChunk", ({ chunk }) => out.write(chunk));
    try {
      await this.send("HeapProfiler.takeHeapSnapshot", { reportProgress: false });
    } finally {
      this.on("HeapProfiler.addHeapSnapshotChunk", undefined);
      await new Promise((resolve, reject) => out.end((e) => (e ? reject(e) : resolve())));
    }
  }
}

/** The inspector of a process: its main thread's session, and its worker threads' (the store's). */
export class Inspector extends Session {
  #ws;
  #workers = new Map();

  static async connect(url) {
    const ws = new WebSocket(url, { perMessageDeflate: false, maxPayload: 0 });
    await new Promise((resolve, reject) => {
      ws.once("open", resolve);
      ws.once("error", reject);
    });
    return new Inspector(ws);
  }

  constructor(ws) {
    super((text) => ws.send(text));
    this.#ws = ws;
    ws.on("message", (data) => this.receive(JSON.parse(data.toString("utf8"))));
    ws.on("close", () => this.closed());
  }

  /** A session on each worker thread running now. */
  async workers() {
    this.on("NodeWorker.attachedToWorker", ({ sessionId }) => {
      const session = new Session(
        (message) => void this.send("NodeWorker.sendMessageToWorker", { sessionId, message }),
      );
      this.#workers.set(sessionId, session);
    });
    this.on("NodeWorker.receivedMessageFromWorker", ({ sessionId, message }) =>
      this.#workers.get(sessionId)?.receive(JSON.parse(message)),
    );
    await this.send("NodeWorker.enable", { waitForDebuggerOnStart: false });
    await sleep(200); // the threads running are told of just after
    return [...this.#workers.values()];
  }

  close() {
    this.#ws.close();
  }
}
