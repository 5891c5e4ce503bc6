// A type-checked example of the client (not run by the tests): submit a task
// and wait for it. `npx tsc --noEmit` checks it against schema.d.ts, so an
// API change that breaks callers breaks the type check.
import { createTaskerClient, formatProblem, type Schemas } from "./client";

export async function submitAndWait(baseUrl: string, apiKey?: string): Promise<Schemas["Task"]> {
  const api = createTaskerClient({ baseUrl, ...(apiKey ? { apiKey } : {}) });
  const submitted = await api.POST("/v1/tasks", {
    params: { header: { "Idempotency-Key": "example-1" } },
    body: { namespace: "shop", name: "order_fulfillment", context: { order_id: 42 } },
  });
  if (submitted.error) throw new Error(formatProblem(submitted.error));
  const id = submitted.data.task_uuid;
  for (;;) {
    const { data, error } = await api.GET("/v1/tasks/{task_uuid}", { params: { path: { task_uuid: id } } });
    if (error) throw new Error(formatProblem(error));
    if (data.state !== "pending" && data.state !== "steps_in_process") return data;
    await new Promise((r) => setTimeout(r, 500));
  }
}
