export * from "./apportion.js";
export * from "./decimal.js";
export * from "./nanousd.js";
