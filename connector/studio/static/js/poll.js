// Follow a long-running resource (training run, suggestion job) until it is done. The server
// answers 202 while it works; the interval is short so progress feels live, and capped by the
// server's Retry-After when that is shorter.
import * as api from "./api.js";

export function follow(path, { onUpdate, interval = 700 } = {}) {
  const controller = new AbortController();
  let timer = null;
  const done = new Promise((resolve, reject) => {
    const tick = async () => {
      try {
        const { done: finished, body, retryAfter } = await api.pollOnce(path, controller.signal);
        if (controller.signal.aborted) return;
        onUpdate && onUpdate(body, finished);
        if (finished) resolve(body);
        else timer = setTimeout(tick, Math.min(interval, retryAfter * 1000));
      } catch (err) {
        if (err.name === "AbortError" || controller.signal.aborted) return;
        reject(err);
      }
    };
    tick();
  });
  return {
    done,
    stop() {
      controller.abort();
      clearTimeout(timer);
    },
  };
}
