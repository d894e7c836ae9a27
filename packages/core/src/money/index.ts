export * from "./decimal.js";
export * from "./nanousd.js";
export * from "./apportion.js";
