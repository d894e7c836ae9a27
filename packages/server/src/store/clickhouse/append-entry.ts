import { workerData } from "node:worker_threads";
import { serveCalls } from "../worker-calls.js";
import { type ClickHouseOptions, openClickHouse } from "./open.js";

// ClickHouse appends on a thread of their own (ClickHouseStore.appendOnThread): the claims, the id check,
// building and encoding the rows and their garbage stay off the event loop that proxies requests.
await serveCalls(() => openClickHouse(workerData as ClickHouseOptions));
