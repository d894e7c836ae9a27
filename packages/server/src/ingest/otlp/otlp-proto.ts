import protobuf from "protobufjs";

/**
 * The OTLP ExportTraceServiceResponse as a protobufjs reflection descriptor (field numbers as in
 * opentelemetry-proto's collector/trace/v1/trace_service.proto): what Tollgate answers a protobuf export
 * with. Requests are decoded by decode-protobuf.ts, straight from the wire format.
 */
const root = protobuf.Root.fromJSON({
  nested: {
    ExportTraceServiceResponse: {
      edition: "proto3",
      fields: { partialSuccess: { id: 1, type: "ExportTracePartialSuccess" } },
    },
    ExportTracePartialSuccess: {
      edition: "proto3",
      fields: { rejectedSpans: { id: 1, type: "int64" }, errorMessage: { id: 2, type: "string" } },
    },
  },
});

export const ExportTraceServiceResponse = root.lookupType("ExportTraceServiceResponse");
