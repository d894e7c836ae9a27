export * from "./builtin.js";
export * from "./cost.js";
export * from "./engine.js";
export * from "./pricebook.js";
export * from "./rates.js";
export * from "./served-as.js";
