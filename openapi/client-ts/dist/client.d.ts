import { type Client, type ClientOptions } from "openapi-fetch";
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
export declare function createTaskerClient(options: TaskerClientOptions): TaskerClient;
/** Formats a problem details document for people: title, detail, and each error's location and message. */
export declare function formatProblem(p: Problem): string;
/** A task, as GET /v1/tasks/{task_uuid} answers it. */
export type Task = Schemas["Task"];
/** The states in which a task no longer moves by itself. */
export declare const finalTaskStates: readonly Task["state"][];
/** Reports whether a task in this state no longer moves by itself (blocked_by_failures: a retry or a resolution by hand can move it again). */
export declare function isFinal(state: Task["state"]): boolean;
/** Thrown by {@link waitTask} for an error answer, with the problem document. */
export declare class ProblemError extends Error {
    readonly problem: Problem;
    constructor(problem: Problem);
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
export declare function waitTask(api: TaskerClient, taskUuid: string, options?: WaitOptions): Promise<Task>;
