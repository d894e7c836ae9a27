import { ExportTraceServiceResponse } from "./otlp-proto.js";
import type { ExportResult } from "./service.js";

export type OtlpFormat = "protobuf" | "json";

/**
 * ExportTraceServiceResponse in the request's encoding. partial_success is set only when spans were
 * refused (OTLP/HTTP: a full success may leave it out); int64 is a decimal string in the JSON mapping.
 */
export function encodeExportResponse(
  result: ExportResult,
  format: OtlpFormat,
): { body: Uint8Array | string; contentType: string } {
  const partialSuccess = result.rejectedSpans
    ? { rejectedSpans: result.rejectedSpans, errorMessage: result.errorMessage }
    : undefined;
  if (format === "json")
    return {
      body: JSON.stringify(
        partialSuccess
          ? { partialSuccess: { ...partialSuccess, rejectedSpans: String(result.rejectedSpans) } }
          : {},
      ),
      contentType: "application/json",
    };
  return {
    body: ExportTraceServiceResponse.encode(partialSuccess ? { partialSuccess } : {}).finish(),
    contentType: "application/x-protobuf",
  };
}
