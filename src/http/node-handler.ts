import type { IncomingMessage, ServerResponse } from 'node:http';
import { ErrorCode, errorBody } from '../errors';

/** What an operational route answers, decided apart from any framework. */
export type HttpAnswer = { status: number; headers: Record<string, string>; body: string };

/**
 * A plain Node request handler — `http.createServer(handler)`, Apollo's standalone server's
 * neighbour, or `app.get('/metrics', handler)` in Express — that also exposes the answer it
 * would write (`answer`), so any other framework can send it its own way (`fastifyHandler`).
 */
export type NodeHandler = {
  (req: IncomingMessage, res: ServerResponse): Promise<void>;
  answer(req: IncomingMessage): Promise<HttpAnswer>;
};

export function nodeHandler(decide: (req: IncomingMessage) => Promise<HttpAnswer>): NodeHandler {
  // A check that throws (a metrics collector, a readiness probe) is a 503 in the one error shape:
  // never an unhandled rejection, which would crash an owner's process, nor a request left hanging.
  const answer = (req: IncomingMessage) =>
    decide(req).catch(() => errorAnswer(503, ErrorCode.SERVICE_UNAVAILABLE, 'This check could not be answered just now; try again.', { 'retry-after': '1' }));
  const handler = async (req: IncomingMessage, res: ServerResponse) => {
    const { status, headers, body } = await answer(req);
    res.writeHead(status, { ...headers, 'content-length': String(Buffer.byteLength(body)) });
    res.end(req.method === 'HEAD' ? undefined : body);
  };
  return Object.assign(handler, { answer });
}

/** The little of Fastify's request and reply the adapter uses (any Fastify version fits). */
type FastifyLike = {
  request: { raw: IncomingMessage };
  reply: { code(status: number): FastifyLike['reply']; headers(values: Record<string, string>): FastifyLike['reply']; send(body: string): unknown };
};

/**
 * The thin Fastify adapter: `app.get('/metrics', fastifyHandler(metricsHandler(tollgate)))`.
 * Fastify sends the answer itself, so its hooks (request ids, headers, logging) still run.
 */
export function fastifyHandler(handler: NodeHandler) {
  return async (request: FastifyLike['request'], reply: FastifyLike['reply']) => {
    const { status, headers, body } = await handler.answer(request.raw);
    return reply.code(status).headers(headers).send(body);
  };
}

export const jsonAnswer = (status: number, value: unknown, headers: Record<string, string> = {}): HttpAnswer => ({
  status,
  headers: { 'content-type': 'application/json; charset=utf-8', ...headers },
  body: JSON.stringify(value),
});

/** A refusal in the one error shape every answer has: `{ errors: [{ message, extensions: { code } }] }`. */
export const errorAnswer = (status: number, code: ErrorCode, message: string, headers: Record<string, string> = {}) => jsonAnswer(status, errorBody(code, message), headers);
