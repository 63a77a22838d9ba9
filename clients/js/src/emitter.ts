// A small typed event emitter that runs in browsers and Node alike (no node:events). Unlike
// node's EventEmitter, an "error" with no listener is not thrown: it is dropped, as
// socket.io-client drops events nobody listens to.

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Listener = (...args: any[]) => void;

/** A map of event names to listener types (an interface or a type literal). */
export type EventMap<T = Record<string, Listener>> = { [K in keyof T]: Listener };

export class Emitter<Events extends EventMap<Events>> {
  #listeners = new Map<string, Listener[]>();

  /** Adds `listener` for `event`. */
  on<E extends keyof Events & string>(event: E, listener: Events[E]): this {
    const list = this.#listeners.get(event) ?? [];
    this.#listeners.set(event, [...list, listener]);
    return this;
  }

  /** Adds `listener` for the next `event` only. */
  once<E extends keyof Events & string>(event: E, listener: Events[E]): this {
    const wrapper = ((...args: unknown[]) => {
      this.off(event, wrapper as Events[E]);
      listener(...args);
    }) as Events[E];
    (wrapper as { listener?: Listener }).listener = listener;
    return this.on(event, wrapper);
  }

  /** Removes `listener` (or every listener of `event` when none is given). */
  off<E extends keyof Events & string>(event: E, listener?: Events[E]): this {
    if (!listener) {
      this.#listeners.delete(event);
      return this;
    }
    const list = this.#listeners.get(event) ?? [];
    const rest = list.filter((l) => l !== listener && (l as { listener?: Listener }).listener !== listener);
    if (rest.length) this.#listeners.set(event, rest);
    else this.#listeners.delete(event);
    return this;
  }

  /** Number of listeners of `event`. */
  listenerCount(event: keyof Events & string): number {
    return this.#listeners.get(event)?.length ?? 0;
  }

  /**
   * Calls the listeners of `event` in order. A listener that throws does not stop the others;
   * its error is reported asynchronously (as an uncaught exception), the way a DOM event
   * listener's error is.
   */
  protected emit<E extends keyof Events & string>(event: E, ...args: Parameters<Events[E]>): boolean {
    const list = this.#listeners.get(event);
    if (!list) return false;
    for (const l of [...list]) {
      try {
        l(...args);
      } catch (err) {
        queueMicrotask(() => {
          throw err;
        });
      }
    }
    return true;
  }
}
