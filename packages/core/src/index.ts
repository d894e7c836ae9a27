export * from "./billing/index.js";
export * from "./ids.js";
export * from "./limits/index.js";
export * from "./money/index.js";
export * from "./pricing/index.js";
export * from "./record/index.js";
export * from "./rollup/index.js";
export * from "./usage/index.js";
