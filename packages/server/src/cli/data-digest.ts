import { createHash } from "node:crypto";

/** A data file's size and SHA-256, as `<FILE>.meta.json` names the file it describes. */
interface DataFileCheck {
  data_bytes: number;
  data_sha256: string;
}

/**
 * The size and SHA-256 of a data file, taken from its bytes as they are written (not read back after): its
 * metadata, a file of its own, names the one data file it describes, so a reader can tell a pair that
 * does not belong together (`sha256sum FILE`).
 */
export function dataDigest() {
  const hash = createHash("sha256");
  let bytes = 0;
  return {
    add(chunk: Buffer): void {
      hash.update(chunk);
      bytes += chunk.length;
    },
    /** Once every byte is added (the digest is then final). */
    check: (): DataFileCheck => ({ data_bytes: bytes, data_sha256: hash.digest("hex") }),
  };
}
