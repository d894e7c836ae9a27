// Rollup math shared by every store backend: exact variance split, concentration, percentiles, forecast.
export * from "./concentration.js";
export * from "./forecast.js";
export * from "./key-order.js";
export * from "./percentile.js";
export * from "./variance.js";
