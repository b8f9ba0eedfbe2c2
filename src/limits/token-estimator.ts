import { LRUCache } from "lru-cache";
import type { CompleteRequest } from "../../gen/sluice/v1/chat_service_pb.js";

/** OpenAI's counting rule for chat prompts: each message costs its content plus ~3 tokens of framing, the reply 3 more. */
const perMessageTokens = 3;
const replyPrimingTokens = 3;
/** An image part, whatever its size: OpenAI's high-detail price of a 512×512 tile set (85 + 4 × 170). */
const imageTokens = 765;
/**
 * Anthropic's tokenizer is not public: its counts run above o200k's for the same text
 * (roughly 10–20% for English prose), so its estimate is o200k's scaled up. Reconciled with
 * the provider's usage when the call ends, so the estimate only needs to be close.
 */
const anthropicFactor = 1.2;
/** Texts at least this long are remembered (system prompts and earlier turns recur call after call). */
const cachedTextLength = 64;

type Count = (text: string) => number;

/** An o200k count as another provider's tokenizer would count it (Anthropic: scaled up; the rest: as is). */
export function forProvider(tokens: number, providerType: string): number {
  return providerType === "anthropic" ? Math.ceil(tokens * anthropicFactor) : tokens;
}

export interface TokenEstimator {
  /**
   * The prompt's tokens: exact o200k (GPT-4o, GPT-4.1, o-series, GPT-5) BPE counts of every
   * text, tool definition and tool call, plus per-message framing; a promise only until the
   * encoding has loaded (its first use). `forProvider` adapts it to another provider's tokenizer.
   */
  promptTokens(request: CompleteRequest): number | Promise<number>;
  /** Tokens of one text (output accounting when a cancelled stream reported no usage). */
  textTokens(text: string): number | Promise<number>;
}

/**
 * A real tokenizer (gpt-tokenizer's o200k_base, shipped in the package — no download) for
 * admission estimates. The encoding (~25 MB, ~300 ms to load) is imported on first use only,
 * so a gateway without token limits never pays for it. Counts of long texts are remembered
 * by their text (an LRU bounded by characters): a conversation resends its earlier turns
 * and its system prompt with every call, and each is tokenized once.
 */
export function createTokenEstimator(options: { readonly cacheChars?: number } = {}): TokenEstimator {
  let count: Count | undefined;
  let loading: Promise<Count> | undefined;
  const cache = new LRUCache<string, number>({
    maxSize: options.cacheChars ?? 8_000_000,
    sizeCalculation: (_value, key) => key.length,
  });

  function load(): Promise<Count> {
    loading ??= import("gpt-tokenizer/encoding/o200k_base").then((encoding) => {
      count = (text) => encoding.countTokens(text);
      return count;
    });
    return loading;
  }

  function tokensOf(text: string, counter: Count): number {
    if (text.length === 0) return 0;
    if (text.length < cachedTextLength) return counter(text);
    let tokens = cache.get(text);
    if (tokens === undefined) {
      tokens = counter(text);
      cache.set(text, tokens);
    }
    return tokens;
  }

  function prompt(request: CompleteRequest, counter: Count): number {
    let tokens = replyPrimingTokens;
    for (const message of request.messages) {
      tokens += perMessageTokens;
      if (message.name !== "") tokens += 1;
      for (const part of message.content) {
        if (part.part.case === "text") tokens += tokensOf(part.part.value, counter);
        else if (part.part.case === "image") tokens += imageTokens;
      }
      for (const call of message.toolCalls) tokens += tokensOf(call.name, counter) + tokensOf(call.arguments, counter);
    }
    for (const tool of request.tools) {
      tokens += tokensOf(tool.name, counter) + tokensOf(tool.description, counter);
      // A JSON Schema is sent as JSON: its text is what the model reads.
      if (tool.parameters !== undefined) tokens += tokensOf(JSON.stringify(tool.parameters), counter);
    }
    return tokens;
  }

  return {
    promptTokens(request) {
      if (count !== undefined) return prompt(request, count);
      return load().then((counter) => prompt(request, counter));
    },
    textTokens(text) {
      if (count !== undefined) return tokensOf(text, count);
      return load().then((counter) => tokensOf(text, counter));
    },
  };
}
