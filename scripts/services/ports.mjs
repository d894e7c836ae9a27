// Loopback ports for the service scripts (plain Node ESM, no dependencies).
import { createServer } from "node:net";

/** A port the OS just gave out on `host` and that is free again (another process may still take it). */
export function freePort(host = "127.0.0.1") {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once("error", reject);
    s.listen(0, host, () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}
