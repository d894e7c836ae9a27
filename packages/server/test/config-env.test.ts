// DESIGN.md's settings read from the environment: an empty variable (`TOLLGATE_PORT=` in a compose file
// whose own variable is unset) means unset, as every other TOLLGATE_* setting reads it, not "" taken as a value.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { afterEach, describe, expect, it, vi } from "vitest";
import { DEFAULT_PORT, dataDirFrom, portFrom } from "../src/config.js";
import { gatewayConfigFromEnv, loadUpstreams } from "../src/gateway/config.js";

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

describe("an upstream base URL the gateway could not use as given is refused at the start, saying why", () => {
  const bad = [
    ["api.openai.com/v1", /must be an http\(s\) URL/],
    ["ftp://files.example.com/v1", /must be an http\(s\) URL/],
    // Dropped from every request as the pool's origin and path are taken: the upstream would see neither.
    ["https://user:s3cret@llm.example.com/v1", /must not carry credentials \(send them as headers\)/],
    [
      "https://acme.openai.azure.com/openai/deployments/d?api-version=2024-10-21",
      /must have no query or fragment/,
    ],
    ["https://llm.example.com/v1#east", /must have no query or fragment/],
  ] as const;

  it.each(bad)("TOLLGATE_OPENAI_BASE_URL=%s", (value, why) => {
    vi.stubEnv("TOLLGATE_OPENAI_BASE_URL", value);
    expect(() => gatewayConfigFromEnv()).toThrow(why);
    expect(() => gatewayConfigFromEnv()).toThrow(/^TOLLGATE_OPENAI_BASE_URL /);
    expect(() => gatewayConfigFromEnv()).not.toThrow(/s3cret/);
    vi.stubEnv("TOLLGATE_OPENAI_BASE_URL", "");
    vi.stubEnv("TOLLGATE_ANTHROPIC_BASE_URL", value);
    expect(() => gatewayConfigFromEnv()).toThrow(/^TOLLGATE_ANTHROPIC_BASE_URL /);
  });

  it.each(bad)("an upstreams file's base_url %s", (value, why) => {
    const dir = mkdtempSync(join(tmpdir(), "tollgate-upstreams-"));
    const file = join(dir, "upstreams.yaml");
    try {
      writeFileSync(file, `upstreams:\n  azure-east:\n    provider: azure\n    base_url: "${value}"\n`);
      expect(() => loadUpstreams(file)).toThrow(why);
      expect(() => loadUpstreams(file)).toThrow(`${file}: upstreams.azure-east.base_url: `);
      expect(() => loadUpstreams(file)).not.toThrow(/s3cret/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
