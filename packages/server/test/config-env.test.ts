// DESIGN.md's settings read from the environment: an empty variable (`TOLLGATE_PORT=` in a compose file
// whose own variable is unset) means unset, as every other TOLLGATE_* setting reads it, not "" taken as a value.
import { resolve } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DEFAULT_PORT, dataDirFrom, portFrom } from "../src/config.js";
import { gatewayConfigFromEnv } from "../src/gateway/config.js";

afterEach(() => {
  vi.unstubAllEnvs();
});

describe("an empty TOLLGATE_* variable is unset", () => {
  it("TOLLGATE_PORT: 4242, not 0 (a random port)", () => {
    vi.stubEnv("TOLLGATE_PORT", "");
    expect(portFrom()).toBe(DEFAULT_PORT);
    expect(DEFAULT_PORT).toBe(4242);
    vi.stubEnv("TOLLGATE_PORT", "5000");
    expect(portFrom()).toBe(5000);
    expect(portFrom("6000")).toBe(6000);
  });

  it("TOLLGATE_DATA_DIR: ./.tollgate, not the working directory itself", () => {
    vi.stubEnv("TOLLGATE_DATA_DIR", "");
    expect(dataDirFrom()).toBe(resolve(".tollgate"));
    vi.stubEnv("TOLLGATE_DATA_DIR", "/srv/tg");
    expect(dataDirFrom()).toBe("/srv/tg");
    expect(dataDirFrom("other")).toBe(resolve("other"));
  });

  it("TOLLGATE_OPENAI_BASE_URL and TOLLGATE_ANTHROPIC_BASE_URL: the providers' own, not no upstream", () => {
    vi.stubEnv("TOLLGATE_OPENAI_BASE_URL", "");
    vi.stubEnv("TOLLGATE_ANTHROPIC_BASE_URL", "");
    expect(gatewayConfigFromEnv()).toMatchObject({
      openaiBaseUrl: "https://api.openai.com/v1",
      anthropicBaseUrl: "https://api.anthropic.com/v1",
    });
    vi.stubEnv("TOLLGATE_OPENAI_BASE_URL", "http://127.0.0.1:9/v1/");
    expect(gatewayConfigFromEnv().openaiBaseUrl).toBe("http://127.0.0.1:9/v1");
  });
});
