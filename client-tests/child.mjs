// Runs an example program as a child process that prints one JSON object per line.
import { spawn } from "node:child_process";

/**
 * Spawns `cmd args` in `cwd`; returns { lines, stderr, exited, child }: `lines` fills with the
 * parsed JSON lines as they come (each also passed to `onLine`), `exited` resolves with the
 * exit code. The child is killed after `timeoutMs`.
 */
export function runJsonLines(cmd, args, { cwd, onLine, timeoutMs = 30000 } = {}) {
  const child = spawn(cmd, args, { cwd });
  const out = { lines: [], stderr: "", child };
  let partial = "";
  child.stdout.on("data", (d) => {
    partial += d;
    const parts = partial.split("\n");
    partial = parts.pop();
    for (const p of parts.filter((l) => l.trim())) {
      const line = JSON.parse(p);
      out.lines.push(line);
      onLine?.(line);
    }
  });
  child.stderr.on("data", (d) => (out.stderr += d));
  const timer = setTimeout(() => child.kill("SIGKILL"), timeoutMs);
  out.exited = new Promise((r) =>
    child.on("exit", (code) => {
      clearTimeout(timer);
      r(code);
    }),
  );
  return out;
}
