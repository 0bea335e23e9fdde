// Problem+json answers through Fastify (the management plane's): the reply.
import type { FastifyReply } from 'fastify'
import { closesConnection, PROBLEM_CONTENT_TYPE, type Problem } from '../core/index.js'

/** Sends `problem` as application/problem+json with its status. */
export function replyProblem (reply: FastifyReply, problem: Problem): void {
  if (closesConnection(problem.status)) reply.header('connection', 'close')
  reply.code(problem.status).type(PROBLEM_CONTENT_TYPE).send(JSON.stringify(problem))
}
