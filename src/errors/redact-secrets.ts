/** Key-shaped text (OpenAI `sk-…`, Anthropic `sk-ant-…`, bearer tokens) that must never reach a caller or a log. */
const secretPattern = /\b(sk-[A-Za-z0-9_*-]{6,}|sk-ant-[A-Za-z0-9_*-]{6,}|Bearer\s+\S+)/g;

/** Removes anything shaped like an API key from text that may reach a caller or a log. */
export function redactSecrets(text: string): string {
  return text.replace(secretPattern, "[redacted]");
}
