// Where the notification cursor is kept between connections and between runs of the app.

/**
 * Anything with `get` and `set`, synchronous or not: the package reads the cursor once, before
 * the first connect, and writes it before handing each notification to the application. Keys
 * name the gateway URL and the user (`sio-gateway:<url>:<userId>`), so one store serves
 * several users and gateways.
 */
export interface CursorStore {
  get(key: string): string | null | undefined | Promise<string | null | undefined>;
  set(key: string, value: string): void | Promise<void>;
}

/** Keeps the cursor in memory: reconnects resume, a restart of the app starts afresh. */
export function memoryStore(): CursorStore {
  const map = new Map<string, string>();
  return {
    get: (key) => map.get(key),
    set: (key, value) => {
      map.set(key, value);
    },
  };
}

/** The part of the Web Storage API the package uses. */
export interface WebStorage {
  getItem(key: string): string | null;
  setItem(key: string, value: string): void;
}

/**
 * Keeps the cursor in `localStorage` (or the Storage given), so a reloaded page resumes where
 * the last one stopped. The tabs of one origin share it: a write never moves the cursor back,
 * so a tab that is behind cannot make a reloaded tab see a notification again.
 */
export function localStorageStore(storage?: WebStorage): CursorStore {
  const s = storage ?? (globalThis as { localStorage?: WebStorage }).localStorage;
  if (!s) throw new Error("localStorageStore: no localStorage here (pass a Storage, or use memoryStore)");
  return {
    get: (key) => s.getItem(key),
    set: (key, value) => {
      const old = s.getItem(key);
      if (old && old > value) return; // another tab is ahead
      s.setItem(key, value);
    },
  };
}
