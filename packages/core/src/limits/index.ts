export * from "./agent.js";
export * from "./budget.js";
export * from "./call-hold.js";
export * from "./estimate.js";
export * from "./rate.js";
export * from "./scope.js";
export * from "./token-hold.js";
export * from "./window.js";
