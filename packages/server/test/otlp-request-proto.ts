import protobuf from "protobufjs";

/**
 * The OTLP trace request messages as a protobufjs reflection descriptor: the tests' reference encoder
 * (field numbers as in opentelemetry-proto: collector/trace/v1/trace_service.proto, trace/v1/trace.proto,
 * common/v1/common.proto, resource/v1/resource.proto), for requests the real exporters would not make.
 * Only what the mapping reads is declared.
 */
type Fields = Record<string, { id: number; type: string; rule?: "repeated" }>;
const message = (fields: Fields) => ({ edition: "proto3", fields }); // proto3: strings must be valid UTF-8
const repeated = (id: number, type: string) => ({ id, type, rule: "repeated" as const });

const root = protobuf.Root.fromJSON({
  nested: {
    ExportTraceServiceRequest: message({ resourceSpans: repeated(1, "ResourceSpans") }),
    ResourceSpans: message({ resource: { id: 1, type: "Resource" }, scopeSpans: repeated(2, "ScopeSpans") }),
    Resource: message({ attributes: repeated(1, "KeyValue") }),
    ScopeSpans: message({ spans: repeated(2, "Span") }),
    Span: message({
      traceId: { id: 1, type: "bytes" },
      spanId: { id: 2, type: "bytes" },
      parentSpanId: { id: 4, type: "bytes" },
      name: { id: 5, type: "string" },
      kind: { id: 6, type: "int32" }, // enum SpanKind, read as its number
      startTimeUnixNano: { id: 7, type: "fixed64" },
      endTimeUnixNano: { id: 8, type: "fixed64" },
      attributes: repeated(9, "KeyValue"),
      status: { id: 15, type: "Status" },
    }),
    Status: message({ message: { id: 2, type: "string" }, code: { id: 3, type: "int32" } }),
    KeyValue: message({ key: { id: 1, type: "string" }, value: { id: 2, type: "AnyValue" } }),
    // AnyValue's members form a oneof in the .proto; declared as plain fields here, so the encoder leaves
    // out a member that holds its default ("", false, 0), as the tests account for.
    AnyValue: message({
      stringValue: { id: 1, type: "string" },
      boolValue: { id: 2, type: "bool" },
      intValue: { id: 3, type: "int64" },
      doubleValue: { id: 4, type: "double" },
      arrayValue: { id: 5, type: "ArrayValue" },
      kvlistValue: { id: 6, type: "KeyValueList" },
      bytesValue: { id: 7, type: "bytes" },
    }),
    ArrayValue: message({ values: repeated(1, "AnyValue") }),
    KeyValueList: message({ values: repeated(1, "KeyValue") }),
  },
});

export const ExportTraceServiceRequest = root.lookupType("ExportTraceServiceRequest");
export const SpanMessage = root.lookupType("Span");

/**
 * A length-delimited field as raw wire bytes (its tag, the length of `body`, then `body`), for bodies
 * built by the million faster than the encoder builds them.
 */
export function lenField(field: number, body: Uint8Array): Buffer {
  const head = [(field << 3) | 2];
  let n = body.length;
  for (; n >= 0x80; n = Math.floor(n / 0x80)) head.push((n % 0x80) | 0x80);
  head.push(n);
  return Buffer.concat([Uint8Array.from(head), body]);
}
