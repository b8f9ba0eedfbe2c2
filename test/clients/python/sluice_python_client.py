"""Calls Sluice over gRPC (h2c, prior knowledge) with grpcio and code generated from proto/
by protoc + grpc_python_plugin, and checks what a Python caller relies on: ListModels,
Complete, StreamComplete, NOT_FOUND with google.rpc.ErrorInfo, a client deadline cutting
a stream short, a W3C traceparent sent as gRPC metadata (the test checks the provider
behind Sluice got the same trace), and an API key sent as gRPC metadata (accepted; missing
or wrong: UNAUTHENTICATED; a model outside the tenant's list: PERMISSION_DENIED with
ErrorInfo MODEL_NOT_ALLOWED; ListModels lists only the tenant's models).

Run by test/clients/cross-language.test.ts with Debian's /usr/bin/python3 (python3-grpcio,
python3-protobuf):
    /usr/bin/python3 sluice_python_client.py --gen DIR --addr 127.0.0.1:PORT --slow-addr 127.0.0.1:PORT2 \
        --traced-addr 127.0.0.1:PORT3 --traceparent 00-<trace id>-<span id>-01 \
        --keyed-addr 127.0.0.1:PORT4 --api-key KEY
where DIR holds the generated modules, the slow server streams words slowly enough for the
deadline check, the traced server's model "traced" calls a provider over HTTP, and the keyed
server has one tenant, whose key is KEY and who may call "demo" only (that server also
serves a model "other").
"""

import argparse
import sys

PROMPT = "Hello from Python"
# Bounds every ordinary call, so a hung server fails the check instead of the test run.
CALL_TIMEOUT_S = 10.0
# Far below how long the slow server takes to stream the whole answer.
SHORT_DEADLINE_S = 1.0


class CheckFailed(Exception):
    pass


def check(ok, message):
    if not ok:
        raise CheckFailed(message)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--gen", required=True, help="directory of the generated modules")
    parser.add_argument("--addr", required=True, help="host:port of a Sluice serving model demo")
    parser.add_argument("--slow-addr", required=True, help="host:port of a Sluice whose demo model streams slowly")
    parser.add_argument("--traced-addr", required=True, help='host:port of a Sluice whose model "traced" calls a provider')
    parser.add_argument("--traceparent", required=True, help="the W3C traceparent the traced call carries")
    parser.add_argument("--keyed-addr", required=True, help='host:port of a Sluice with one tenant, who may call "demo" only')
    parser.add_argument("--api-key", required=True, help="that tenant's API key")
    args = parser.parse_args()
    sys.path.insert(0, args.gen)

    import grpc
    from google.rpc import error_details_pb2, status_pb2
    from sluice.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc
    from sluice.v1 import model_service_pb2, model_service_pb2_grpc

    def user_request(model, text):
        return chat_service_pb2.CompleteRequest(
            model=model,
            messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=[chat_pb2.ContentPart(text=text)])],
        )

    def check_list_models(channel):
        res = model_service_pb2_grpc.ModelServiceStub(channel).ListModels(
            model_service_pb2.ListModelsRequest(), timeout=CALL_TIMEOUT_S
        )
        aliases = [m.alias for m in res.models]
        check("demo" in aliases, f'ListModels: no model with alias "demo" among {aliases}')

    def check_complete(chat):
        res = chat.Complete(user_request("demo", PROMPT), timeout=CALL_TIMEOUT_S)
        check(
            res.message.role == chat_pb2.ROLE_ASSISTANT,
            f"Complete: message role is {chat_pb2.Role.Name(res.message.role)}, want ROLE_ASSISTANT",
        )
        text = "".join(part.text for part in res.message.content)
        check(text != "", "Complete: empty answer text")
        check(PROMPT in text, f"Complete: the demo answer should quote the prompt {PROMPT!r}, got {text!r}")
        check(
            res.finish_reason == chat_pb2.FINISH_REASON_STOP,
            f"Complete: finish_reason is {chat_pb2.FinishReason.Name(res.finish_reason)}, want FINISH_REASON_STOP",
        )
        check(res.usage.output_tokens > 0, "Complete: usage.output_tokens is 0")
        return text

    def check_stream(chat, unary_text):
        events = list(chat.StreamComplete(user_request("demo", PROMPT), timeout=CALL_TIMEOUT_S))
        check(len(events) > 0, "StreamComplete: no events")
        first, last = events[0], events[-1]
        check(first.WhichOneof("event") == "start", f"StreamComplete: first event is {first.WhichOneof('event')}, want start")
        check(first.start.provider == "demo", f'StreamComplete: start.provider is {first.start.provider!r}, want "demo"')
        check(last.WhichOneof("event") == "done", f"StreamComplete: last event is {last.WhichOneof('event')}, want done")
        check(
            last.done.finish_reason == chat_pb2.FINISH_REASON_STOP,
            f"StreamComplete: done.finish_reason is {chat_pb2.FinishReason.Name(last.done.finish_reason)}, "
            "want FINISH_REASON_STOP",
        )
        check(last.done.usage.output_tokens > 0, "StreamComplete: done.usage.output_tokens is 0")
        middle = events[1:-1]
        for i, event in enumerate(middle, start=1):
            check(event.WhichOneof("event") == "delta", f"StreamComplete: event {i} is {event.WhichOneof('event')}, want delta")
        check(len(middle) >= 2, f"StreamComplete: {len(middle)} delta events, want at least 2")
        text = "".join(event.delta.text for event in middle)
        check(text == unary_text, f"StreamComplete: deltas joined are {text!r}, but Complete answered {unary_text!r}")

    def error_info(error, what):
        """The google.rpc.ErrorInfo of a failed call. grpc-status-details-bin holds a serialized
        google.rpc.Status whose details are Anys (decoded by hand: Debian has no grpcio-status)."""
        raw = [value for key, value in (error.trailing_metadata() or ()) if key == "grpc-status-details-bin"]
        check(len(raw) == 1, f"{what}: no grpc-status-details-bin trailer")
        status = status_pb2.Status.FromString(raw[0])
        code = error.code().value[0]
        check(status.code == code, f"{what}: details code {status.code}, want {code}")
        infos = []
        for detail in status.details:
            if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                info = error_details_pb2.ErrorInfo()
                detail.Unpack(info)
                infos.append(info)
        check(len(infos) == 1, f"{what}: {len(infos)} google.rpc.ErrorInfo among {len(status.details)} details, want 1")
        return infos[0]

    def check_not_found(chat):
        try:
            chat.Complete(user_request("no-such-model", PROMPT), timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as e:
            error = e
        else:
            raise CheckFailed("Complete(no-such-model): succeeded, want NOT_FOUND")
        check(
            error.code() == grpc.StatusCode.NOT_FOUND,
            f"Complete(no-such-model): code {error.code()} ({error.details()!r}), want NOT_FOUND",
        )
        check(
            "no-such-model" in (error.details() or ""),
            f"Complete(no-such-model): message {error.details()!r} does not name the model",
        )
        info = error_info(error, "Complete(no-such-model)")
        check(
            info.reason == "MODEL_NOT_FOUND" and info.domain == "sluice",
            f"Complete(no-such-model): ErrorInfo reason {info.reason!r} domain {info.domain!r}, "
            "want MODEL_NOT_FOUND / sluice",
        )

    def check_deadline(slow_chat):
        events = 0
        try:
            for event in slow_chat.StreamComplete(user_request("demo", PROMPT), timeout=SHORT_DEADLINE_S):
                events += 1
                check(
                    event.WhichOneof("event") != "done",
                    f"deadline: the slow stream finished within {SHORT_DEADLINE_S} s; "
                    "the deadline check needs a slower server",
                )
        except grpc.RpcError as e:
            error = e
        else:
            raise CheckFailed(f"deadline: the stream ended cleanly without done after {events} events")
        check(events > 0, f"deadline: no event before the deadline ({error.code()}); the stream never started")
        # The server may see the deadline first (DEADLINE_EXCEEDED) or the client's
        # RST_STREAM first (CANCELLED); either way the call must fail with one of these.
        check(
            error.code() in (grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED),
            f"deadline: code {error.code()} ({error.details()!r}), want DEADLINE_EXCEEDED or CANCELLED",
        )

    def check_traceparent(traced_chat):
        # As a Python service instrumented with OpenTelemetry sends it: gRPC metadata.
        res = traced_chat.Complete(
            user_request("traced", PROMPT), timeout=CALL_TIMEOUT_S, metadata=(("traceparent", args.traceparent),)
        )
        check(any(part.text for part in res.message.content), "Complete(traced) with a traceparent: empty answer text")

    def check_keyed(keyed_channel):
        """The API key checks, against a gateway with one tenant whose key is --api-key and
        whose models are "demo" only; the gateway also serves "other"."""
        chat = chat_service_pb2_grpc.ChatServiceStub(keyed_channel)

        def bearer(key):
            # As a Python caller of a keyed gateway sends it: gRPC metadata.
            return (("authorization", f"Bearer {key}"),)

        def complete_failure(model, metadata, what, want):
            try:
                chat.Complete(user_request(model, PROMPT), timeout=CALL_TIMEOUT_S, metadata=metadata)
            except grpc.RpcError as e:
                check(e.code() == want, f"{what}: code {e.code()} ({e.details()!r}), want {want}")
                return e
            raise CheckFailed(f"{what}: succeeded, want {want}")

        # (1) With the key as a bearer token: served.
        res = chat.Complete(user_request("demo", PROMPT), timeout=CALL_TIMEOUT_S, metadata=bearer(args.api_key))
        check(any(part.text for part in res.message.content), "api key: Complete(demo) with the key: empty answer text")
        # (2) No key, (3) a wrong one: UNAUTHENTICATED.
        complete_failure("demo", None, "api key: Complete(demo) without a key", grpc.StatusCode.UNAUTHENTICATED)
        complete_failure(
            "demo", bearer(args.api_key + "x"), "api key: Complete(demo) with a wrong key", grpc.StatusCode.UNAUTHENTICATED
        )
        # (4) A model outside the tenant's list: PERMISSION_DENIED with ErrorInfo MODEL_NOT_ALLOWED.
        what = "api key: Complete(other) with the key"
        denied = complete_failure("other", bearer(args.api_key), what, grpc.StatusCode.PERMISSION_DENIED)
        info = error_info(denied, what)
        check(
            info.reason == "MODEL_NOT_ALLOWED" and info.domain == "sluice",
            f"{what}: ErrorInfo reason {info.reason!r} domain {info.domain!r}, want MODEL_NOT_ALLOWED / sluice",
        )
        # (5) ListModels with the key: the tenant's models only.
        listed = model_service_pb2_grpc.ModelServiceStub(keyed_channel).ListModels(
            model_service_pb2.ListModelsRequest(), timeout=CALL_TIMEOUT_S, metadata=bearer(args.api_key)
        )
        aliases = [m.alias for m in listed.models]
        check(aliases == ["demo"], f'api key: ListModels with the key: aliases {aliases}, want only "demo"')

    # insecure_channel speaks HTTP/2 with prior knowledge (h2c) to a cleartext port.
    with (
        grpc.insecure_channel(args.addr) as channel,
        grpc.insecure_channel(args.slow_addr) as slow_channel,
        grpc.insecure_channel(args.traced_addr) as traced_channel,
        grpc.insecure_channel(args.keyed_addr) as keyed_channel,
    ):
        try:
            chat = chat_service_pb2_grpc.ChatServiceStub(channel)
            check_list_models(channel)
            unary_text = check_complete(chat)
            check_stream(chat, unary_text)
            check_not_found(chat)
            check_deadline(chat_service_pb2_grpc.ChatServiceStub(slow_channel))
            check_traceparent(chat_service_pb2_grpc.ChatServiceStub(traced_channel))
            check_keyed(keyed_channel)
        except CheckFailed as e:
            print(f"python client: FAIL: {e}", file=sys.stderr)
            return 1
        except grpc.RpcError as e:
            print(f"python client: FAIL: unexpected gRPC error: {e.code()} {e.details()!r}", file=sys.stderr)
            return 1
    print(
        "python client: ok: ListModels, Complete, StreamComplete, NOT_FOUND+ErrorInfo, deadline, traceparent, "
        "api key: bearer accepted, missing+wrong UNAUTHENTICATED, PERMISSION_DENIED+MODEL_NOT_ALLOWED, ListModels scoped"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
