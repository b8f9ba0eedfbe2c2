"""A Sluice client in Python (grpcio): a unary Complete, a StreamComplete printing deltas as
they arrive, google.rpc.ErrorInfo and RetryInfo read from errors, a deadline, and a
cancelled stream. It calls the gateway at SLUICE_URL (default http://127.0.0.1:8080) with the
API key in SLUICE_API_KEY (if set). The generated code must be on PYTHONPATH; see README.md.
"""

import math
import os
import sys
from urllib.parse import urlparse

import grpc
from google.rpc import error_details_pb2, status_pb2
from sluice.v1 import chat_pb2, chat_service_pb2, chat_service_pb2_grpc


def channel() -> grpc.Channel:
    url = urlparse(os.environ.get("SLUICE_URL", "http://127.0.0.1:8080"))
    if url.scheme == "https":
        credentials = grpc.ssl_channel_credentials()
        key = os.environ.get("SLUICE_API_KEY")
        if key:
            credentials = grpc.composite_channel_credentials(credentials, grpc.access_token_call_credentials(key))
        return grpc.secure_channel(url.netloc, credentials)
    # grpcio sends call credentials only over TLS; over plaintext the key goes as metadata (see `metadata`).
    return grpc.insecure_channel(url.netloc)


def metadata() -> list[tuple[str, str]]:
    key = os.environ.get("SLUICE_API_KEY")
    if key and urlparse(os.environ.get("SLUICE_URL", "http://127.0.0.1:8080")).scheme != "https":
        return [("authorization", f"Bearer {key}")]
    return []


def request(model: str, text: str) -> chat_service_pb2.CompleteRequest:
    return chat_service_pb2.CompleteRequest(
        model=model,
        messages=[chat_pb2.Message(role=chat_pb2.ROLE_USER, content=[chat_pb2.ContentPart(text=text)])],
    )


def details(error: grpc.RpcError) -> list:
    """The google.rpc error details of a failed call (from its grpc-status-details-bin trailer)."""
    for key, value in error.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            found = []
            for any_detail in status_pb2.Status.FromString(value).details:
                for cls in (error_details_pb2.ErrorInfo, error_details_pb2.RetryInfo):
                    if any_detail.Is(cls.DESCRIPTOR):
                        message = cls()
                        any_detail.Unpack(message)
                        found.append(message)
            return found
    return []


def main() -> None:
    with channel() as conn:
        chat = chat_service_pb2_grpc.ChatServiceStub(conn)

        # Unary. Every call gets a deadline (timeout, in seconds).
        response = chat.Complete(request("demo", "Hello from Python"), timeout=10, metadata=metadata())
        print("complete:", "".join(part.text for part in response.message.content))

        # Server streaming: print each delta as it arrives.
        print("stream: ", end="", flush=True)
        for event in chat.StreamComplete(request("demo", "Hello from Python"), timeout=10, metadata=metadata()):
            if event.HasField("delta"):
                print(event.delta.text, end="", flush=True)
            elif event.HasField("done"):
                print("\nstream done:", chat_pb2.FinishReason.Name(event.done.finish_reason))

        # An unknown model: NOT_FOUND, with google.rpc.ErrorInfo among the status details.
        try:
            chat.Complete(request("no-such-model", "Hello from Python"), timeout=10, metadata=metadata())
        except grpc.RpcError as error:
            for detail in details(error):
                if isinstance(detail, error_details_pb2.ErrorInfo):
                    print(f"not found: {error.code().name} {detail.reason} (domain {detail.domain})")

        # Model "limited" allows one request a minute: a second call is RESOURCE_EXHAUSTED,
        # and RetryInfo says when to try again.
        for _ in range(2):
            try:
                chat.Complete(request("limited", "Hello from Python"), timeout=10, metadata=metadata())
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:
                    raise
                reason, delay = "", 0.0
                for detail in details(error):
                    if isinstance(detail, error_details_pb2.ErrorInfo):
                        reason = detail.reason
                    elif isinstance(detail, error_details_pb2.RetryInfo):
                        delay = detail.retry_delay.ToTimedelta().total_seconds()
                print(f"rate limited: {error.code().name} {reason}, retry in {math.ceil(delay)} s")
                break

        # A deadline shorter than the answer takes to stream: DEADLINE_EXCEEDED.
        try:
            for _ in chat.StreamComplete(request("demo", "Hello from Python"), timeout=0.2, metadata=metadata()):
                pass
        except grpc.RpcError as error:
            print(f"deadline: {error.code().name} after 200 ms")

        # Cancel: stop after the first delta; the gateway stops the call.
        call = chat.StreamComplete(request("demo", "Hello from Python"), timeout=10, metadata=metadata())
        try:
            for event in call:
                if event.HasField("delta"):
                    call.cancel()
        except grpc.RpcError as error:
            print(f"cancel: {error.code().name} after the first delta")


if __name__ == "__main__":
    try:
        main()
    except grpc.RpcError as error:
        sys.exit(f"python example: {error.code().name}: {error.details()}")
