import type { CompleteRequest } from "../../../gen/sluice/v1/chat_service_pb.js";
import { FinishReason, Role } from "../../../gen/sluice/v1/chat_pb.js";

/** What the demo model says to a request: pieces to stream, and the usage to report. */
export interface DemoAnswer {
  /** Word-sized pieces (each keeps its trailing space); joined they are the answer. */
  readonly pieces: readonly string[];
  readonly finishReason: FinishReason;
  readonly inputTokens: number;
  readonly outputTokens: number;
}

/** Rough token estimate (~4 characters a token, as for English with OpenAI tokenizers). */
export function estimateTokens(text: string): number {
  return text.length === 0 ? 0 : Math.ceil(text.length / 4);
}

/** Tokens every message costs beyond its text (role and separators), as chat formats do. */
const perMessageOverhead = 4;
/** Longest quote of the prompt the demo repeats back. */
const maxQuoted = 200;

/**
 * The demo model's deterministic answer: it quotes the last user message and says what it
 * is. Pure, so the same request always gets the same text — tests and client examples in
 * any language can compare a streamed answer with a unary one.
 */
export function composeDemoAnswer(request: CompleteRequest): DemoAnswer {
  let inputTokens = 0;
  let lastUserText = "";
  let lastUserImages = 0;
  for (const message of request.messages) {
    inputTokens += perMessageOverhead;
    let text = "";
    let images = 0;
    for (const part of message.content) {
      if (part.part.case === "text") text += part.part.value;
      else if (part.part.case === "image") images++;
    }
    inputTokens += estimateTokens(text) + images * 85;
    if (message.role === Role.USER) {
      lastUserText = text;
      lastUserImages = images;
    }
  }

  const quoted = lastUserText.trim().replace(/\s+/g, " ");
  const shown = quoted.length > maxQuoted ? `${quoted.slice(0, maxQuoted)}…` : quoted;
  const imageNote = lastUserImages > 0 ? ` (with ${lastUserImages} image${lastUserImages > 1 ? "s" : ""})` : "";
  const answer =
    request.responseFormat?.format.case === "jsonObject"
      ? JSON.stringify({ youSaid: shown, images: lastUserImages, model: "sluice-demo" }, null, 1)
      : `You said: "${shown}"${imageNote}. This is Sluice's built-in demo model: it answers without ` +
        `calling any provider, so routing, streaming, deadlines and errors can be tried with no API keys. ` +
        `Configure OpenAI, Anthropic or a local OpenAI-compatible server for real answers.`;

  let text = answer;
  let finishReason = FinishReason.STOP;
  for (const stop of request.stop) {
    const at = text.indexOf(stop);
    if (at !== -1) text = text.slice(0, at);
  }
  let pieces: string[] = text.match(/\s*\S+\s*/g) ?? [];
  if (request.maxOutputTokens !== undefined && pieces.length > request.maxOutputTokens) {
    pieces = pieces.slice(0, request.maxOutputTokens);
    finishReason = FinishReason.LENGTH;
  }
  // One word is close to one token; reporting it that way keeps usage consistent with
  // the max_output_tokens cut above.
  return { pieces, finishReason, inputTokens, outputTokens: pieces.length };
}
