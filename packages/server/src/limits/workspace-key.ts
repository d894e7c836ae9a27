/**
 * A key of an in-process map of limit state that spans workspaces: the workspace and its own key, joined by
 * NUL, which neither holds (workspace ids are checked; a limit's own keys are built from checked parts).
 */
export const inWorkspace = (workspace: string, key: string): string => `${workspace}\u0000${key}`;
