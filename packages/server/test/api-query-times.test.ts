import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parseTime, QUERY_TIMES, QueryTimeError } from "../src/query-time.js";
import { getJson, openTestRuntime, postEvents, validRecord } from "./helpers.js";

// Times in query strings: out of range or out of order is a 400 naming the parameter, on every route that
// reads one, never a store overflow (500). Records are stored first so every query reaches the store.
let rt: Awaited<ReturnType<typeof openTestRuntime>>;
const cursor = (text: string) => Buffer.from(text).toString("base64url");

beforeAll(async () => {
  rt = await openTestRuntime();
  const res = await postEvents(rt.app, rt.rootToken, [
    validRecord({ feature: "a", deployment: "prod" }),
    validRecord({ feature: "b", deployment: "prod" }),
  ]);
  expect(res.status).toBe(200);
});
afterAll(() => rt?.close());

const get = (path: string) => getJson(rt.app, rt.rootToken, path);

describe("query times", () => {
  it.each([
    ["/api/spend?by=feature&from=999999999d", "from"],
    ["/api/spend?by=feature&from=99999999999999999999d", "from"],
    ["/api/spend?by=day&from=300000d", "from"],
    ["/api/spend?by=feature&from=1969-12-31", "from"],
    ["/api/spend?by=feature&to=2100-01-01T00:00:00.001Z", "to"],
    ["/api/events?from=999999999d", "from"],
    ["/api/events?to=9999-12-31", "to"],
    ["/api/export/calls?from=999999d", "from"],
    [`/api/export/calls?cursor=${cursor("9999999999999999:01a248fa-88e7-73c5-9126-8dc1e037a14f")}`, "cursor"],
    ["/api/variance?from=7d&to=now&vs_from=999999999d&vs_to=14d", "vs_from"],
    ["/api/variance?vs_from=30d&vs_to=2200-01-01", "vs_to"],
    ["/api/rollups/features?from=999999999d", "from"],
    ["/api/rollups/user-day?to=2100-01-02", "to"],
    ["/api/forecast?from=999999999d", "from"],
    ["/api/limit-events?from=999999999d", "from"],
    ["/api/prices/unpriced?since=99999999d", "since"],
    ["/api/prices/unpriced?since=yesterday", "since"],
  ])("%s → 400 naming %s", async (path, param) => {
    const { status, json } = await get(path);
    expect(status, JSON.stringify(json)).toBe(400);
    expect(json.error).toMatchObject({ type: "invalid_request_error", code: "invalid_parameter", param });
    if (param !== "cursor" && !path.includes("yesterday"))
      expect(json.error.message).toContain(`${param} must be between 1970-01-01 and 2100-01-01`);
  });

  it.each([
    ["/api/rollups/features?to=2026-02-30", "to"],
    ["/api/variance?vs_from=2026-02-29", "vs_from"],
  ])("%s (no such day) → 400 naming %s", async (path, param) => {
    const { status, json } = await get(path);
    expect(status, JSON.stringify(json)).toBe(400);
    expect(json.error).toMatchObject({ code: "invalid_parameter", param });
  });

  it.each([
    ["/api/spend?by=feature&from=now&to=7d", "to"],
    ["/api/spend?by=feature&from=9999-12-31&to=0001-01-01", "from"],
    ["/api/events?from=2026-01-02&to=2026-01-01", "to"],
    ["/api/events?from=2026-01-01&to=2026-01-01", "to"],
    ["/api/export/calls?from=now&to=7d", "to"],
    ["/api/rollups/features?from=now&to=7d", "to"],
  ])("%s (from not before to) → 400 naming %s", async (path, param) => {
    const { status, json } = await get(path);
    expect(status, JSON.stringify(json)).toBe(400);
    expect(json.error).toMatchObject({ type: "invalid_request_error", code: "invalid_parameter", param });
  });

  it("from not before to says what each time was read as", async () => {
    const { json } = await get("/api/events?from=2026-01-02&to=2026-01-01");
    expect(json.error.message).toBe(
      "to must be after from (from=2026-01-02 is 2026-01-02T00:00:00.000Z, to=2026-01-01 is 2026-01-01T00:00:00.000Z)",
    );
  });

  it("the whole range is answered: 1970-01-01 to 2100-01-01, on every route", async () => {
    const all = "from=1970-01-01&to=2100-01-01";
    const events = await get(`/api/events?${all}`);
    expect(events.status).toBe(200);
    expect(events.json.events).toHaveLength(2);
    const spend = await get(`/api/spend?by=day&${all}`);
    expect(spend.status).toBe(200);
    expect(spend.json.rows.reduce((n: number, r: { calls: number }) => n + r.calls, 0)).toBe(2);
    for (const path of [
      `/api/export/calls?${all}`,
      `/api/rollups/features?${all}`,
      `/api/rollups/user-day?${all}`,
      `/api/variance?${all}`,
      `/api/variance?from=7d&vs_from=1970-01-01`,
      "/api/limit-events?from=1970-01-01",
      "/api/prices/unpriced?since=1970-01-01",
    ]) {
      const res = await get(path);
      expect(res.status, `${path}: ${JSON.stringify(res.json)}`).toBe(200);
    }
  });

  it("parseTime: the range's ends are in, a millisecond past them is out, whatever the form", () => {
    const now = Date.UTC(2026, 0, 1);
    expect(parseTime("1970-01-01T00:00:00Z", now)).toBe(QUERY_TIMES.min);
    expect(parseTime("2100-01-01", now)).toBe(QUERY_TIMES.max);
    expect(parseTime("7d", now)).toBe(now - 7 * 86_400_000);
    expect(parseTime("now", now)).toBe(now);
    for (const text of [
      "1969-12-31T23:59:59.999Z",
      "2100-01-01T00:00:00.001Z",
      "20455d",
      `${"9".repeat(400)}w`,
    ])
      expect(() => parseTime(text, now), text).toThrow(QueryTimeError);
    expect(() => parseTime("soon", now)).toThrow("must be an ISO date/time");
  });

  it("parseTime: a date-time without a zone is UTC, like a date, whatever the server's time zone", () => {
    const tz = process.env.TZ;
    process.env.TZ = "America/New_York";
    try {
      const dec1 = Date.UTC(2026, 11, 1);
      expect(parseTime("2026-12-01")).toBe(dec1);
      expect(parseTime("2026-12-01T00:00:00")).toBe(dec1);
      expect(parseTime("2026-12-01T00:00")).toBe(dec1);
      expect(parseTime("2026-12-01 00:00")).toBe(dec1);
      expect(parseTime("2026-12-01T10:30:00.250")).toBe(dec1 + 37_800_250);
      expect(parseTime("2026-12-01T00:00:00Z")).toBe(dec1);
      expect(parseTime("2026-12-01T01:00:00+01:00")).toBe(dec1);
      expect(parseTime("2026-11-30T19:00:00-0500")).toBe(dec1);
    } finally {
      if (tz === undefined) delete process.env.TZ;
      else process.env.TZ = tz;
    }
  });

  it("parseTime: a day that does not exist is refused, not rolled into the next month", () => {
    for (const text of [
      "2026-02-29",
      "2026-02-30",
      "2026-04-31T00:00:00Z",
      "2026-12-01T24:30:00Z",
      "2026-12-01T10:60",
    ])
      expect(() => parseTime(text), text).toThrow(QueryTimeError);
    expect(parseTime("2028-02-29")).toBe(Date.UTC(2028, 1, 29));
  });
});

describe("whole-number parameters", () => {
  it.each([
    ["/api/events?limit=1e3", "limit"],
    ["/api/events?limit=0x10", "limit"],
    ["/api/events?limit=%205", "limit"],
    ["/api/events?limit=0", "limit"],
    ["/api/events?limit=100001", "limit"],
    ["/api/export/calls?limit=1e3", "limit"],
    ["/api/export/calls?limit=", "limit"],
    ["/api/rollups/user-day?top=1e1", "top"],
    ["/api/rollups/user-day?top=101", "top"],
  ])("%s → 400 naming %s", async (path, param) => {
    const { status, json } = await get(path);
    expect(status, JSON.stringify(json)).toBe(400);
    expect(json.error).toMatchObject({ code: "invalid_parameter", param });
    expect(json.error.message).toMatch(new RegExp(`^${param} must be a whole number from 1 to \\d+$`));
  });

  it("takes plain digits", async () => {
    const events = await get("/api/events?limit=1");
    expect(events.status).toBe(200);
    expect(JSON.stringify(events.json)).toContain('"event_id"');
    expect((await get("/api/export/calls?limit=2")).status).toBe(200);
    expect((await get("/api/rollups/user-day?top=3")).status).toBe(200);
  });
});
