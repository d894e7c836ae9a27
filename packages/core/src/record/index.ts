export * from "./build.js";
export * from "./fast-parse.js";
export * from "./schema.js";
