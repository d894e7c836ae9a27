import { setFlagsFromString } from "node:v8";
import { runInNewContext } from "node:vm";

/** The engine's garbage collector, for a test that awaits what collecting a dropped object does. */
export function exposedGc(): () => void {
  setFlagsFromString("--expose-gc");
  return runInNewContext("gc") as () => void;
}
