import { PriceBook, type PricingEngine } from "@tollgate/core";
import { ConfigFileError, readYamlFile, watchConfigFile } from "./yaml-file.js";

/** Reads a price book from YAML or JSON (JSON is YAML); errors name the file and the failing path. */
export function loadPriceBook(path: string): PriceBook {
  const doc = readYamlFile(path, "price book");
  try {
    return PriceBook.parse(doc);
  } catch (e) {
    throw new ConfigFileError(`${path}: ${(e as Error).message}`);
  }
}

/**
 * Keeps the engine's price book in step with the file: reloaded when it changes or on SIGHUP.
 * A broken edit is reported and the previous book stays in force.
 */
export function watchPriceBook(path: string, engine: PricingEngine, log: (msg: string) => void): () => void {
  const reload = () => {
    try {
      const book = loadPriceBook(path);
      engine.setPriceBook(book);
      log(`price book reloaded: ${book.ref}`);
    } catch (e) {
      log(`price book NOT reloaded, keeping ${engine.priceBookRef}: ${(e as Error).message}`);
    }
  };
  return watchConfigFile(path, reload);
}
