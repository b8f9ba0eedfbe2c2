import { jsonResponse, sseResponse, type ScriptedResponse } from "./fake-upstream.js";

// Small OpenAI Chat Completions answers in the real wire shape, for scripting fake
// deployments in resilience tests (recorded transcripts are replayed in the provider tests).

export function completion(text: string): ScriptedResponse {
  return jsonResponse(200, {
    id: "chatcmpl-r",
    object: "chat.completion",
    created: 1,
    model: "m",
    choices: [{ index: 0, message: { role: "assistant", content: text }, finish_reason: "stop" }],
    usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
  });
}

function chunk(body: object): string {
  return `data: ${JSON.stringify({ id: "chatcmpl-s", object: "chat.completion.chunk", created: 1, model: "m", ...body })}\n\n`;
}

export function streamOf(texts: string[], extra: Partial<ScriptedResponse> = {}, done = true): ScriptedResponse {
  const chunks = [
    chunk({ choices: [{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }] }),
    ...texts.map((text) => chunk({ choices: [{ index: 0, delta: { content: text }, finish_reason: null }] })),
  ];
  if (done) {
    chunks.push(chunk({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }] }));
    chunks.push(
      chunk({ choices: [], usage: { prompt_tokens: 3, completion_tokens: texts.length, total_tokens: 3 + texts.length } }),
    );
    chunks.push("data: [DONE]\n\n");
  }
  return sseResponse(chunks, extra);
}

export const error500 = jsonResponse(500, { error: { message: "boom", type: "server_error", param: null, code: null } });
export const error400 = jsonResponse(400, { error: { message: "bad", type: "invalid_request_error", param: null, code: null } });
