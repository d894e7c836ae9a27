export * from "./money/index.js";
export * from "./pricing/index.js";
export * from "./usage/types.js";
