import type { Message } from "@bufbuild/protobuf";
import { Code, ConnectError } from "@connectrpc/connect";
import type { MessageJsonCodec } from "../wire/compiled-json-codec.js";
import { decodeUtf8Strict } from "../wire/strict-utf8.js";

/**
 * connect's JSON parse of a request message (its `createJsonSerialization`), for every lane
 * that reads JSON: bytes that are not UTF-8 or text that is not the message are
 * INVALID_ARGUMENT, in the codec's words — which quote at most 64 characters of the input
 * (compiled-json-codec.ts), where protobuf-es quotes an unknown key whole.
 */
export function parseJsonMessage(codec: MessageJsonCodec, bytes: Uint8Array): Message {
  try {
    return codec.parse(decodeUtf8Strict(bytes));
  } catch (err) {
    throw ConnectError.from(err, Code.InvalidArgument);
  }
}
