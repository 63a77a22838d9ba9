// Node-only helpers, kept out of the main entry so that bundlers for browsers never see node:fs.
import fs from "node:fs";
import path from "node:path";
import type { CursorStore } from "./stores.js";

/**
 * Keeps cursors in a JSON file (`{ "<key>": "<cursor>" }`), written atomically (temporary file,
 * then rename) and synchronously before each notification is handed to the application, so a
 * process that is killed and started again resumes without a loss or a repeat.
 */
export function fileStore(file: string): CursorStore {
  const read = (): Record<string, string> => {
    try {
      const parsed: unknown = JSON.parse(fs.readFileSync(file, "utf8"));
      return parsed && typeof parsed === "object" ? (parsed as Record<string, string>) : {};
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === "ENOENT") return {};
      throw err;
    }
  };
  return {
    get: (key) => read()[key],
    set: (key, value) => {
      const all = read();
      all[key] = value;
      fs.mkdirSync(path.dirname(path.resolve(file)), { recursive: true });
      const tmp = `${file}.${process.pid}.tmp`;
      fs.writeFileSync(tmp, JSON.stringify(all, null, 2) + "\n");
      fs.renameSync(tmp, file);
    },
  };
}

export type { CursorStore } from "./stores.js";
