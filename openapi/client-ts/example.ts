// A type-checked example of the client: `npx tsc --noEmit` checks it
// against schema.d.ts, so an API change that breaks callers breaks the type
// check. README.md's "TypeScript client" example, which a test runs with
// Node against a live runner (openapi/tsclient_test.go), is the same code
// in JavaScript.
import { createTaskerClient, formatProblem, waitTask, type Task } from "./client.js";

export async function submitAndWait(baseUrl: string, apiKey?: string): Promise<Task> {
  const api = createTaskerClient({ baseUrl, ...(apiKey ? { apiKey } : {}) });
  const submitted = await api.POST("/v1/tasks", {
    params: { header: { "Idempotency-Key": "order-42" } },
    body: { namespace: "shop", name: "order_fulfillment", context: { order_id: 42 } },
  });
  if (submitted.error) throw new Error(formatProblem(submitted.error));
  const created: boolean = submitted.response.status === 201; // 200: submitted before under this key
  console.log(created ? "created" : "already submitted", submitted.data.task_uuid);
  return waitTask(api, submitted.data.task_uuid, { intervalMs: 200, signal: AbortSignal.timeout(60_000) });
}
