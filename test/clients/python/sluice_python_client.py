"""Calls Sluice over gRPC (h2c, prior knowledge) with grpcio and code generated from proto/
by protoc + grpc_python_plugin, and checks what a Python caller relies on: ListModels,
Complete, StreamComplete, NOT_FOUND with google.rpc.ErrorInfo, a client deadline cutting
a stream short, a W3C traceparent sent as gRPC metadata (the test checks the provider
behind Sluice got the same trace), and an API key sent as gRPC metadata (accepted; missing
or wrong: UNAUTHENTICATED; a model outside the tenant's list: PERMISSION_DENIED with
ErrorInfo MODEL_NOT_ALLOWED; ListModels lists only the tenant's models). Over TLS, against a
gateway that asks for client certificates, the other credential kinds: a JWT as gRPC metadata
(accepted; expired: UNAUTHENTICATED; a model outside the tenant's list: PERMISSION_DENIED),
a client certificate from the gateway's client CA (accepted; none: UNAUTHENTICATED; one from
another CA: UNAUTHENTICATED) and a signed request, HMAC-SHA256 over the gRPC body as sent
(accepted; the same headers replayed, or a timestamp an hour old: UNAUTHENTICATED).

Run by test/clients/cross-language.test.ts with Debian's /usr/bin/python3 (python3-grpcio,
python3-protobuf):
    /usr/bin/python3 sluice_python_client.py --gen DIR --addr 127.0.0.1:PORT --slow-addr 127.0.0.1:PORT2 \
        --traced-addr 127.0.0.1:PORT3 --traceparent 00-<trace id>-<span id>-01 \
        --keyed-addr 127.0.0.1:PORT4 --api-key KEY \
        --secure-addr 127.0.0.1:PORT5 --ca-file CA.pem --client-cert CERT.pem --client-key KEY.pem \
        --foreign-cert FOREIGN.pem --foreign-key FOREIGN-KEY.pem --jwt JWT --expired-jwt JWT2 \
        --signing-key-id ID --signing-secret SECRET
where DIR holds the generated modules, the slow server streams words slowly enough for the
deadline check, the traced server's model "traced" calls a provider over HTTP, and the keyed
server has one tenant, whose key is KEY and who may call "demo" only (that server also
serves a model "other"). The secure server speaks TLS with the certificate CA.pem (for
127.0.0.1) and asks for (but does not require) a client certificate; it has three tenants,
each allowed "demo" only (it also serves "other"): one named by the JWT, one by the client
certificate CERT.pem (PKCS#8 key KEY.pem) signed by its client CA (FOREIGN.pem has the same
names, signed by another CA), one by the signing key ID whose secret is SECRET.
"""

import argparse
import hashlib
import hmac
import secrets
import struct
import sys
import time

PROMPT = "Hello from Python"
# Bounds every ordinary call, so a hung server fails the check instead of the test run.
CALL_TIMEOUT_S = 10.0
# Far below how long the slow server takes to stream the whole answer.
SHORT_DEADLINE_S = 1.0
# What a signed request signs ahead of its timestamp, nonce and body hash: method and path.
SIGNED_METHOD = "POST"
SIGNED_PATH = "/sluice.v1.ChatService/Complete"
# Far outside the gateway's signed-request window (300 s by default).
STALE_BY_S = 3600


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
    parser.add_argument(
        "--secure-addr", required=True, help="host:port of a Sluice over TLS with JWT, client-cert and signed-request tenants"
    )
    parser.add_argument("--ca-file", required=True, help="PEM certificate the secure gateway serves (trusted as the root)")
    parser.add_argument("--client-cert", required=True, help="PEM client certificate signed by the gateway's client CA")
    parser.add_argument("--client-key", required=True, help="PEM (PKCS#8) key of --client-cert")
    parser.add_argument("--foreign-cert", required=True, help="PEM client certificate with the same names, signed by another CA")
    parser.add_argument("--foreign-key", required=True, help="PEM (PKCS#8) key of --foreign-cert")
    parser.add_argument("--jwt", required=True, help="a valid JWT for the JWT tenant")
    parser.add_argument("--expired-jwt", required=True, help="an expired JWT for the JWT tenant")
    parser.add_argument("--signing-key-id", required=True, help="id of the signed-request tenant's signing key")
    parser.add_argument("--signing-secret", required=True, help="secret of that signing key")
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

    def complete_failure(chat, request, metadata, what, want):
        """Calls Complete(request), which must fail with `want`; returns the error."""
        try:
            chat.Complete(request, timeout=CALL_TIMEOUT_S, metadata=metadata)
        except grpc.RpcError as e:
            check(e.code() == want, f"{what}: code {e.code()} ({e.details()!r}), want {want}")
            return e
        raise CheckFailed(f"{what}: succeeded, want {want}")

    def complete_success(chat, request, metadata, what):
        """Calls Complete(request), which must answer with some text."""
        try:
            res = chat.Complete(request, timeout=CALL_TIMEOUT_S, metadata=metadata)
        except grpc.RpcError as e:
            raise CheckFailed(f"{what}: code {e.code()} ({e.details()!r}), want OK")
        check(any(part.text for part in res.message.content), f"{what}: empty answer text")

    def check_keyed(keyed_channel):
        """The API key checks, against a gateway with one tenant whose key is --api-key and
        whose models are "demo" only; the gateway also serves "other"."""
        chat = chat_service_pb2_grpc.ChatServiceStub(keyed_channel)

        def bearer(key):
            # As a Python caller of a keyed gateway sends it: gRPC metadata.
            return (("authorization", f"Bearer {key}"),)

        def keyed_failure(model, metadata, what, want):
            return complete_failure(chat, user_request(model, PROMPT), metadata, what, want)

        # (1) With the key as a bearer token: served.
        res = chat.Complete(user_request("demo", PROMPT), timeout=CALL_TIMEOUT_S, metadata=bearer(args.api_key))
        check(any(part.text for part in res.message.content), "api key: Complete(demo) with the key: empty answer text")
        # (2) No key, (3) a wrong one: UNAUTHENTICATED.
        keyed_failure("demo", None, "api key: Complete(demo) without a key", grpc.StatusCode.UNAUTHENTICATED)
        keyed_failure(
            "demo", bearer(args.api_key + "x"), "api key: Complete(demo) with a wrong key", grpc.StatusCode.UNAUTHENTICATED
        )
        # (4) A model outside the tenant's list: PERMISSION_DENIED with ErrorInfo MODEL_NOT_ALLOWED.
        what = "api key: Complete(other) with the key"
        denied = keyed_failure("other", bearer(args.api_key), what, grpc.StatusCode.PERMISSION_DENIED)
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

    def read_bytes(path):
        with open(path, "rb") as f:
            return f.read()

    def tls_channel(cert=None, key=None):
        """A TLS channel to --secure-addr trusting --ca-file, presenting cert/key when given."""
        credentials = grpc.ssl_channel_credentials(
            root_certificates=read_bytes(args.ca_file),
            private_key=read_bytes(key) if key else None,
            certificate_chain=read_bytes(cert) if cert else None,
        )
        return grpc.secure_channel(args.secure_addr, credentials)

    def signed_headers(request, timestamp, nonce):
        """The signing headers of a Complete carrying `request`. The body signed is the gRPC body
        exactly as grpcio sends it (no compression): the 5-byte envelope prefix (flag 0, then
        the message length, big-endian) followed by the serialized message."""
        message = request.SerializeToString()
        body = struct.pack(">BI", 0, len(message)) + message
        signed = "\n".join(
            [SIGNED_METHOD, SIGNED_PATH, str(timestamp), nonce, hashlib.sha256(body).hexdigest()]
        )
        signature = hmac.new(args.signing_secret.encode("utf-8"), signed.encode("utf-8"), hashlib.sha256).hexdigest()
        return (
            ("x-sluice-key-id", args.signing_key_id),
            ("x-sluice-timestamp", str(timestamp)),
            ("x-sluice-nonce", nonce),
            ("x-sluice-signature", signature),
        )

    def check_credentials():
        """The other credential kinds, against the gateway over TLS with one tenant per kind,
        each allowed "demo" only (the gateway also serves "other")."""

        def bearer(token):
            return (("authorization", f"Bearer {token}"),)

        demo = user_request("demo", PROMPT)
        unauthenticated = grpc.StatusCode.UNAUTHENTICATED

        with tls_channel() as channel:
            chat = chat_service_pb2_grpc.ChatServiceStub(channel)
            # (1) No credential at all (no client certificate either): UNAUTHENTICATED.
            complete_failure(chat, demo, None, "credentials: Complete(demo) over TLS without a credential", unauthenticated)
            # (2) JWT: accepted; expired: UNAUTHENTICATED; another model: PERMISSION_DENIED.
            complete_success(chat, demo, bearer(args.jwt), "jwt: Complete(demo) with the JWT")
            complete_failure(chat, demo, bearer(args.expired_jwt), "jwt: Complete(demo) with the expired JWT", unauthenticated)
            complete_failure(
                chat,
                user_request("other", PROMPT),
                bearer(args.jwt),
                "jwt: Complete(other) with the JWT",
                grpc.StatusCode.PERMISSION_DENIED,
            )
            # (3) Signed request: accepted; the very same headers again (same nonce, timestamp and
            # body): UNAUTHENTICATED; a fresh nonce but an hour-old timestamp: UNAUTHENTICATED.
            signed = signed_headers(demo, int(time.time()), secrets.token_hex(16))
            complete_success(chat, demo, signed, "signed: Complete(demo) signed")
            complete_failure(chat, demo, signed, "signed: Complete(demo) replaying the same signed headers", unauthenticated)
            stale = signed_headers(demo, int(time.time()) - STALE_BY_S, secrets.token_hex(16))
            complete_failure(
                chat, demo, stale, f"signed: Complete(demo) signed with a timestamp {STALE_BY_S} s old", unauthenticated
            )
        # (4) A client certificate from the gateway's client CA, no other credential: accepted.
        with tls_channel(args.client_cert, args.client_key) as channel:
            complete_success(
                chat_service_pb2_grpc.ChatServiceStub(channel), demo, None, "client cert: Complete(demo) with the client certificate"
            )
        # (5) One with the same names from another CA: UNAUTHENTICATED.
        with tls_channel(args.foreign_cert, args.foreign_key) as channel:
            complete_failure(
                chat_service_pb2_grpc.ChatServiceStub(channel),
                demo,
                None,
                "client cert: Complete(demo) with a certificate from another CA",
                unauthenticated,
            )

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
            check_credentials()
        except CheckFailed as e:
            print(f"python client: FAIL: {e}", file=sys.stderr)
            return 1
        except grpc.RpcError as e:
            print(f"python client: FAIL: unexpected gRPC error: {e.code()} {e.details()!r}", file=sys.stderr)
            return 1
    print(
        "python client: ok: ListModels, Complete, StreamComplete, NOT_FOUND+ErrorInfo, deadline, traceparent, "
        "api key: bearer accepted, missing+wrong UNAUTHENTICATED, PERMISSION_DENIED+MODEL_NOT_ALLOWED, ListModels scoped, "
        "credentials: jwt accepted+expired UNAUTHENTICATED+other PERMISSION_DENIED, "
        "client cert accepted+none UNAUTHENTICATED+foreign UNAUTHENTICATED, "
        "signed accepted+replayed UNAUTHENTICATED+stale UNAUTHENTICATED"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
