// Typed client of the tasker-runner management API. The types come from
// schema.d.ts, generated from ../openapi.yaml by openapi-typescript (run
// `bash .ci/generate-clients`); the requests are made by openapi-fetch.
//
//   import { createTaskerClient } from "./client";
//   const api = createTaskerClient({ baseUrl: "http://localhost:8081", apiKey: process.env.TASKER_API_KEY });
//   const { data, error } = await api.GET("/v1/tasks/{task_uuid}", { params: { path: { task_uuid: id } } });
import createClient, { type Client, type ClientOptions } from "openapi-fetch";
import type { components, operations, paths } from "./schema";

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
