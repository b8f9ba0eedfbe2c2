import { Code, ConnectError } from "@connectrpc/connect";
import { checkJsonElements } from "./element-budget.js";

/** The message every lane (and connect-node, given `strictUtf8Decoder`) answers for bytes that are not UTF-8. */
export const invalidUtf8Message = "request body is not valid UTF-8";

// fatal: invalid UTF-8 throws instead of becoming U+FFFD. A leading BOM is skipped, as
// connect's default decoder does.
const fatalDecoder = new TextDecoder("utf-8", { fatal: true });

/**
 * A JSON request body as text, or INVALID_ARGUMENT when it is not valid UTF-8: the bytes are
 * the client's mistake, and replacing them silently (TextDecoder's default) would hand the
 * model text the caller never sent.
 */
export function decodeUtf8Strict(bytes: Uint8Array): string {
  try {
    return fatalDecoder.decode(bytes);
  } catch {
    throw new ConnectError(invalidUtf8Message, Code.InvalidArgument);
  }
}

/**
 * For connect-node's `jsonOptions.textDecoder`, which it calls on JSON requests only (its
 * serialization passes a ConnectError thrown while decoding through unchanged), so the
 * general path answers as the lanes do: strict UTF-8, and the element budget checked before
 * connect parses the text (element-budget.ts; the lanes' request codecs check it themselves).
 */
export const strictUtf8Decoder: { decode(input?: Uint8Array): string } = {
  decode: (input) => {
    const text = decodeUtf8Strict(input ?? new Uint8Array(0));
    checkJsonElements(text);
    return text;
  },
};
