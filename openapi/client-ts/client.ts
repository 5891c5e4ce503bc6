// Typed client of the tasker-runner management API. The types come from
// schema.d.ts, generated from ../openapi.yaml by openapi-typescript; the
// requests are made by openapi-fetch. `npm run build` compiles this file to
// dist/ (JavaScript and .d.ts, committed: run `bash .ci/generate-clients`,
// or `make generate`, after changing it).
//
//   import { createTaskerClient } from "@tasker-runner/client";
//   const api = createTaskerClient({ baseUrl: "http://localhost:8081", apiKey: process.env.TASKER_API_KEY });
//   const { data, error } = await api.GET("/v1/tasks/{task_uuid}", { params: { path: { task_uuid: id } } });
import createClient, { type Client, type ClientOptions } from "openapi-fetch";
import type { components, operations, paths } from "./schema.js";

export type { components, operations, paths };

/** The schemas of the API (request and response bodies). */
export type Schemas = components["schemas"];

/** An RFC 9457 problem details document, as every error response carries. */
export type Problem = Schemas["ErrorModel"];

export type TaskerClient = Client<paths>;

export interface TaskerClientOptions extends ClientOptions {
  /** The API's base URL, e.g. http://localhost:8081. */
  baseUrl: string;
  /** An API key or JWT, sent as `Authorization: Bearer <apiKey>`. */
  apiKey?: string;
}

/** Returns a typed client of the management API. */
export function createTaskerClient(options: TaskerClientOptions): TaskerClient {
  const { apiKey, headers, ...rest } = options;
  const h = new Headers(headers as HeadersInit | undefined);
  if (apiKey) {
    h.set("Authorization", `Bearer ${apiKey}`);
  }
  return createClient<paths>({ ...rest, headers: h });
}

/** Formats a problem details document for people: title, detail, and each error's location and message. */
export function formatProblem(p: Problem): string {
  let s = p.title ?? "error";
  if (p.status) s = `${p.status} ${s}`;
  if (p.detail) s += `: ${p.detail}`;
  for (const e of p.errors ?? []) {
    s += `\n  ${e.location ?? ""}: ${e.message ?? ""}`;
  }
  return s;
}

/** A task, as GET /v1/tasks/{task_uuid} answers it. */
export type Task = Schemas["Task"];

/** The states in which a task no longer moves by itself. */
export const finalTaskStates: readonly Task["state"][] = ["complete", "blocked_by_failures", "cancelled", "resolved_manually"];

/** Reports whether a task in this state no longer moves by itself (blocked_by_failures: a retry or a resolution by hand can move it again). */
export function isFinal(state: Task["state"]): boolean {
  return finalTaskStates.includes(state);
}

/** Thrown by {@link waitTask} for an error answer, with the problem document. */
export class ProblemError extends Error {
  readonly problem: Problem;
  constructor(problem: Problem) {
    super(formatProblem(problem));
    this.name = "ProblemError";
    this.problem = problem;
  }
}

export interface WaitOptions {
  /** Milliseconds between two reads of the task; 500 by default. */
  intervalMs?: number;
  /** Stops waiting (the promise rejects with the signal's reason). */
  signal?: AbortSignal;
  /** Called with every read of the task, the final one included. */
  onPoll?: (task: Task) => void;
}

/**
 * Reads the task every `intervalMs` until it is in a final state ({@link isFinal}) and returns it.
 * A task that ends blocked_by_failures is returned, not thrown: look at its `state`.
 * An error answer rejects with a {@link ProblemError}.
 */
export async function waitTask(api: TaskerClient, taskUuid: string, options: WaitOptions = {}): Promise<Task> {
  const { intervalMs = 500, signal, onPoll } = options;
  for (;;) {
    signal?.throwIfAborted();
    const { data, error } = await api.GET("/v1/tasks/{task_uuid}", {
      params: { path: { task_uuid: taskUuid } },
      ...(signal ? { signal } : {}),
    });
    if (error) throw new ProblemError(error);
    onPoll?.(data);
    if (isFinal(data.state)) return data;
    await new Promise<void>((resolve, reject) => {
      const onAbort = () => {
        clearTimeout(timer);
        reject(signal?.reason);
      };
      const timer = setTimeout(() => {
        signal?.removeEventListener("abort", onAbort);
        resolve();
      }, intervalMs);
      signal?.addEventListener("abort", onAbort, { once: true });
    });
  }
}
