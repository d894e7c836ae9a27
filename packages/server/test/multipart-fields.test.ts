// The fields of a multipart form, as the gateway reads an image edit's model, n, size and images.
import { describe, expect, it } from "vitest";
import { GatewayError } from "../src/gateway/gateway-error.js";
import { multipartFields } from "../src/gateway/multipart-fields.js";

const form = async (entries: [string, string | Blob, string?][]) => {
  const fd = new FormData();
  for (const [k, v, name] of entries) typeof v === "string" ? fd.append(k, v) : fd.append(k, v, name);
  const req = new Request("http://x/", { method: "POST", body: fd });
  return { body: Buffer.from(await req.arrayBuffer()), type: req.headers.get("content-type")! };
};

/** One text part of a form whose boundary is "b", and a file part of one byte. */
const part = (name: string, value: string) =>
  `--b\r\nContent-Disposition: form-data; name="${name}"\r\n\r\n${value}\r\n`;
const file = (name: string, filename: string) =>
  `--b\r\nContent-Disposition: form-data; name="${name}"; filename="${filename}"\r\n\r\nx\r\n`;
/** The longest text field kept (multipart-fields.ts). */
const MAX_TEXT = 256 * 1024;

describe("multipartFields", () => {
  it("text fields as text (n, partial_images numbers; stream a flag), files as their names and sizes, repeated names as arrays", async () => {
    const png = new Blob([new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x2d, 0x2d])], {
      type: "image/png",
    });
    const { body, type } = await form([
      ["model", "gpt-image-1"],
      ["image[]", png, "a.png"],
      ["image[]", png, 'b "2".png'],
      ["prompt", "un chat — «rouge»\r\n--not a boundary"],
      ["n", "2"],
      ["partial_images", "3"],
      ["stream", "true"],
      ["size", "1024x1536"],
    ]);
    expect(multipartFields(body, type)).toEqual({
      model: "gpt-image-1",
      // A form's quotes in a file name go as %22 (WHATWG): kept as sent. Each file's 8 bytes, its CRLF and
      // dashes within.
      "image[]": [
        { filename: "a.png", size: 8 },
        { filename: "b %222%22.png", size: 8 },
      ],
      prompt: "un chat — «rouge»\r\n--not a boundary",
      n: 2,
      partial_images: 3,
      stream: true,
      size: "1024x1536",
    });
  });

  it("a flag spelt True or 1 (Python's requests, other clients) is a flag", () => {
    const body = Buffer.from(`${part("stream", "True")}${part("n", "10")}--b--\r\n`);
    expect(multipartFields(body, "multipart/form-data; boundary=b")).toEqual({ stream: true, n: 10 });
    const off = Buffer.from(`${part("stream", "0")}--b--\r\n`);
    expect(multipartFields(off, "multipart/form-data; boundary=b")).toEqual({ stream: false });
  });

  it("a text field sent twice is refused, naming it (which copy the upstream reads is its own choice)", () => {
    const refusal = (body: string) => {
      try {
        multipartFields(Buffer.from(`${body}--b--\r\n`), "multipart/form-data; boundary=b");
      } catch (e) {
        return e;
      }
      return "taken";
    };
    for (const [name, first, second] of [
      ["model", "gpt-image-1.5", "gpt-image-1"],
      ["size", "1024x1024", "1536x1024"],
      ["n", "1", "10"],
      ["quality", "low", "high"],
      ["prompt", "x".repeat(MAX_TEXT + 1), "x"], // the first too long to keep: still a copy
    ] as const) {
      const err = refusal(`${part(name, first)}${part(name, second)}`);
      expect(err).toBeInstanceOf(GatewayError);
      expect(err).toMatchObject({ status: 400, type: "invalid_request_error", extra: { param: name } });
      expect((err as Error).message).toContain(`"${name}" is repeated`);
    }
    // A text field and a file under one name are two copies as much.
    expect(refusal(`${part("model", "gpt-image-1")}${file("model", "m.txt")}`)).toBeInstanceOf(GatewayError);
  });

  it("a list (its name ends in []) and files under one name may come several times", () => {
    const body = `${part("timestamp_granularities[]", "word")}${part("timestamp_granularities[]", "segment")}${file("image", "a.png")}${file("image", "b.png")}--b--\r\n`;
    expect(multipartFields(Buffer.from(body), "multipart/form-data; boundary=b")).toEqual({
      "timestamp_granularities[]": ["word", "segment"],
      image: [
        { filename: "a.png", size: 1 },
        { filename: "b.png", size: 1 },
      ],
    });
  });

  it("a quoted boundary parameter, and a value that is not a number stays text", () => {
    const body = Buffer.from('--a b\r\nContent-Disposition: form-data; name="n"\r\n\r\nten\r\n--a b--\r\n');
    expect(multipartFields(body, 'multipart/form-data; boundary="a b"')).toEqual({ n: "ten" });
  });

  it("null for any other body: JSON, no boundary, a part cut off, a part with no name", () => {
    const json = Buffer.from('{"model":"gpt-image-1"}');
    expect(multipartFields(json, "application/json")).toBeNull();
    expect(multipartFields(json, "multipart/form-data")).toBeNull();
    const cut = Buffer.from('--b\r\nContent-Disposition: form-data; name="model"\r\n\r\ngpt-image-1');
    expect(multipartFields(cut, "multipart/form-data; boundary=b")).toBeNull();
    const nameless = Buffer.from("--b\r\nContent-Disposition: form-data\r\n\r\nx\r\n--b--");
    expect(multipartFields(nameless, "multipart/form-data; boundary=b")).toBeNull();
  });
});
