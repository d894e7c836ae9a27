import { whyWriteFails } from "./write-failure.js";

/**
 * Why a file or directory could not be created (`e`, Node's error), as the user reads it, said of `place`:
 * the directory it was to be made in ("it": a temp dir's parent) or a file's ("its directory": an
 * output file's). A code said nowhere is given as Node's own message.
 */
export function whyCannotCreate(e: unknown, place: "it" | "its directory"): string {
  const { code = "", message } = e as NodeJS.ErrnoException;
  const why: Record<string, string> = {
    ENOENT: `${place} does not exist`,
    ENOTDIR: `${place} is not a directory`,
    EACCES: "permission denied",
    // Refused whatever the permission bits say, to root too: renaming over such a file, or creating in such a directory.
    EPERM:
      "not permitted (an immutable or append-only file or directory, or another user's file in a sticky directory such as /tmp)",
    EROFS: "a read-only file system",
  };
  return (Object.hasOwn(why, code) ? why[code] : whyWriteFails(code)) ?? message;
}
