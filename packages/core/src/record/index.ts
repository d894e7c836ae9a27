export * from "./attribution.js";
export * from "./blank-input.js";
export * from "./build.js";
export * from "./call-record.js";
export * from "./fast-check.js";
export * from "./field-text.js";
export * from "./schema.js";
export * from "./tool-model-call.js";
