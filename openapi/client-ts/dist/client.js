// Typed client of the tasker-runner management API. The types come from
// schema.d.ts, generated from ../openapi.yaml by openapi-typescript; the
// requests are made by openapi-fetch. `npm run build` compiles this file to
// dist/ (JavaScript and .d.ts, committed: run `bash .ci/generate-clients`,
// or `make generate`, after changing it).
//
//   import { createTaskerClient } from "@tasker-runner/client";
//   const api = createTaskerClient({ baseUrl: "http://localhost:8081", apiKey: process.env.TASKER_API_KEY });
//   const { data, error } = await api.GET("/v1/tasks/{task_uuid}", { params: { path: { task_uuid: id } } });
import createClient, {} from "openapi-fetch";
/** Returns a typed client of the management API. */
export function createTaskerClient(options) {
    const { apiKey, headers, ...rest } = options;
    const h = new Headers(headers);
    if (apiKey) {
        h.set("Authorization", `Bearer ${apiKey}`);
    }
    return createClient({ ...rest, headers: h });
}
/** Formats a problem details document for people: title, detail, and each error's location and message. */
export function formatProblem(p) {
    let s = p.title ?? "error";
    if (p.status)
        s = `${p.status} ${s}`;
    if (p.detail)
        s += `: ${p.detail}`;
    for (const e of p.errors ?? []) {
        s += `\n  ${e.location ?? ""}: ${e.message ?? ""}`;
    }
    return s;
}
/** The states in which a task no longer moves by itself. */
export const finalTaskStates = ["complete", "blocked_by_failures", "cancelled", "resolved_manually"];
/** Reports whether a task in this state no longer moves by itself (blocked_by_failures: a retry or a resolution by hand can move it again). */
export function isFinal(state) {
    return finalTaskStates.includes(state);
}
/** Thrown by {@link waitTask} for an error answer, with the problem document. */
export class ProblemError extends Error {
    problem;
    constructor(problem) {
        super(formatProblem(problem));
        this.name = "ProblemError";
        this.problem = problem;
    }
}
/**
 * Reads the task every `intervalMs` until it is in a final state ({@link isFinal}) and returns it.
 * A task that ends blocked_by_failures is returned, not thrown: look at its `state`.
 * An error answer rejects with a {@link ProblemError}.
 */
export async function waitTask(api, taskUuid, options = {}) {
    const { intervalMs = 500, signal, onPoll } = options;
    for (;;) {
        signal?.throwIfAborted();
        const { data, error } = await api.GET("/v1/tasks/{task_uuid}", {
            params: { path: { task_uuid: taskUuid } },
            ...(signal ? { signal } : {}),
        });
        if (error)
            throw new ProblemError(error);
        onPoll?.(data);
        if (isFinal(data.state))
            return data;
        await new Promise((resolve, reject) => {
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
