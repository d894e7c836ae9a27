import type { Context, Hono } from "hono";
import { bodyLimit } from "hono/body-limit";
import type { Principal } from "../../auth/keys.js";
import { ApiError, badRequest } from "../../errors.js";
import { MAX_BODY_BYTES, tooLarge } from "../body.js";
import { decodeContent } from "../content-encoding.js";
import type { IngestService } from "../service.js";
import { decodeJsonExport } from "./decode-json.js";
import { decodeProtobufExport } from "./decode-protobuf.js";
import { encodeExportResponse, type OtlpFormat } from "./response.js";
import { OtlpIngest } from "./service.js";
import { type DecodedExport, OtlpDecodeError, OtlpTooLarge } from "./spans.js";
import type { SpanStore } from "./stored-relatives.js";

type Env = { Variables: { principal: Principal } };
type Middleware = (c: Context<Env>, next: () => Promise<void>) => Promise<void>;

export interface OtlpRouteHelpers {
  write: Middleware;
  workspaceOf: (c: Context<Env>, requested?: string | null) => string;
}

/** A gzip body may inflate to this much and no more (a small bomb must not take the process's memory). */
export const MAX_INFLATED_BYTES = 64 * 1024 * 1024;

/**
 * POST /v1/traces, OTLP/HTTP: protobuf or JSON, identity or gzip. Answers 200 with an
 * ExportTraceServiceResponse in the request's encoding (partial_success naming refused spans); an
 * undecodable body is 400 and a store failure 503 (both in Tollgate's error shape), nothing stored.
 */
export function registerOtlpRoutes(
  app: Hono<Env>,
  ingest: IngestService,
  store: SpanStore,
  helpers: OtlpRouteHelpers,
): void {
  const otlp = new OtlpIngest(ingest, store);
  app.post(
    "/v1/traces",
    bodyLimit({
      maxSize: MAX_BODY_BYTES,
      onError: () => {
        throw tooLarge();
      },
    }),
    helpers.write,
    async (c) => {
      const workspace = helpers.workspaceOf(c, c.req.query("workspace"));
      const format = formatOf(c.req.header("content-type"));
      const body = await decodeContent(
        c.req.header("content-encoding"),
        new Uint8Array(await c.req.arrayBuffer()),
        MAX_INFLATED_BYTES,
      );
      const req = decode(format, body);
      const res = encodeExportResponse(await otlp.export(workspace, req), format);
      return c.body(res.body as Uint8Array<ArrayBuffer> | string, 200, { "content-type": res.contentType });
    },
  );
}

function formatOf(contentType: string | undefined): OtlpFormat {
  const type = (contentType ?? "").split(";")[0]!.trim().toLowerCase();
  if (type === "application/x-protobuf" || type === "application/protobuf") return "protobuf";
  if (type === "application/json") return "json";
  throw new ApiError(
    415,
    "invalid_request_error",
    "unsupported_media_type",
    `content-type must be application/x-protobuf or application/json (OTLP/HTTP), got ${JSON.stringify(type || "none")}`,
    "content-type",
  );
}

function decode(format: OtlpFormat, body: Uint8Array): DecodedExport {
  try {
    return format === "protobuf" ? decodeProtobufExport(body) : decodeJsonExport(body);
  } catch (e) {
    if (e instanceof OtlpDecodeError) throw badRequest("invalid_otlp", e.message);
    if (e instanceof OtlpTooLarge)
      throw new ApiError(413, "invalid_request_error", "batch_too_large", e.message);
    throw e;
  }
}
