// A Sluice client in Java (grpc-java): a unary Complete, a StreamComplete printing deltas as
// they arrive, google.rpc.ErrorInfo and RetryInfo read from errors, a deadline, and a
// cancelled stream. It calls the gateway at SLUICE_URL (default http://127.0.0.1:8080) with
// the API key in SLUICE_API_KEY (if set). See README.md for the generate / build / run commands.

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.ErrorInfo;
import com.google.rpc.RetryInfo;
import io.grpc.Context;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import io.grpc.stub.MetadataUtils;
import io.sluice.v1.ChatServiceGrpc;
import io.sluice.v1.CompleteRequest;
import io.sluice.v1.CompleteResponse;
import io.sluice.v1.ContentPart;
import io.sluice.v1.Message;
import io.sluice.v1.Role;
import io.sluice.v1.StreamCompleteResponse;
import java.net.URI;
import java.util.Iterator;
import java.util.concurrent.TimeUnit;

public final class SluiceExample {
  private static CompleteRequest request(String model, String text) {
    return CompleteRequest.newBuilder()
        .setModel(model)
        .addMessages(
            Message.newBuilder().setRole(Role.ROLE_USER).addContent(ContentPart.newBuilder().setText(text)))
        .build();
  }

  /** The google.rpc details of a failed call, from its grpc-status-details-bin trailer. */
  private static <T extends com.google.protobuf.Message> T detail(StatusRuntimeException error, Class<T> type)
      throws InvalidProtocolBufferException {
    com.google.rpc.Status status = StatusProto.fromThrowable(error);
    if (status != null) {
      for (Any any : status.getDetailsList()) {
        if (any.is(type)) return any.unpack(type);
      }
    }
    return null;
  }

  public static void main(String[] args) throws Exception {
    URI url = URI.create(System.getenv().getOrDefault("SLUICE_URL", "http://127.0.0.1:8080"));
    ManagedChannelBuilder<?> builder = ManagedChannelBuilder.forAddress(url.getHost(), url.getPort());
    if ("https".equals(url.getScheme())) builder.useTransportSecurity();
    else builder.usePlaintext();
    ManagedChannel channel = builder.build();
    try {
      ChatServiceGrpc.ChatServiceBlockingStub chat = ChatServiceGrpc.newBlockingStub(channel);
      String key = System.getenv("SLUICE_API_KEY");
      if (key != null && !key.isEmpty()) {
        Metadata headers = new Metadata();
        headers.put(Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER), "Bearer " + key);
        chat = chat.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers));
      }
      run(chat);
    } finally {
      channel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  private static void run(ChatServiceGrpc.ChatServiceBlockingStub chat) throws Exception {
    // Unary. Every call gets a deadline.
    CompleteResponse response =
        chat.withDeadlineAfter(10, TimeUnit.SECONDS).complete(request("demo", "Hello from Java"));
    StringBuilder answer = new StringBuilder();
    for (ContentPart part : response.getMessage().getContentList()) answer.append(part.getText());
    System.out.println("complete: " + answer);

    // Server streaming: print each delta as it arrives.
    System.out.print("stream: ");
    Iterator<StreamCompleteResponse> events =
        chat.withDeadlineAfter(10, TimeUnit.SECONDS).streamComplete(request("demo", "Hello from Java"));
    while (events.hasNext()) {
      StreamCompleteResponse event = events.next();
      if (event.hasDelta()) {
        System.out.print(event.getDelta().getText());
        System.out.flush();
      } else if (event.hasDone()) {
        System.out.println("\nstream done: " + event.getDone().getFinishReason());
      }
    }

    // An unknown model: NOT_FOUND, with google.rpc.ErrorInfo among the status details.
    try {
      chat.withDeadlineAfter(10, TimeUnit.SECONDS).complete(request("no-such-model", "Hello from Java"));
    } catch (StatusRuntimeException error) {
      ErrorInfo info = detail(error, ErrorInfo.class);
      System.out.println(
          "not found: " + error.getStatus().getCode() + " " + info.getReason() + " (domain " + info.getDomain() + ")");
    }

    // Model "limited" allows one request a minute: a second call is RESOURCE_EXHAUSTED,
    // and RetryInfo says when to try again.
    for (int i = 0; i < 2; i++) {
      try {
        chat.withDeadlineAfter(10, TimeUnit.SECONDS).complete(request("limited", "Hello from Java"));
      } catch (StatusRuntimeException error) {
        if (error.getStatus().getCode() != io.grpc.Status.Code.RESOURCE_EXHAUSTED) throw error;
        ErrorInfo info = detail(error, ErrorInfo.class);
        RetryInfo retry = detail(error, RetryInfo.class);
        long millis = retry.getRetryDelay().getSeconds() * 1000 + retry.getRetryDelay().getNanos() / 1_000_000;
        System.out.println(
            "rate limited: " + error.getStatus().getCode() + " " + info.getReason() + ", retry in "
                + (millis + 999) / 1000 + " s");
        break;
      }
    }

    // A deadline shorter than the answer takes to stream: DEADLINE_EXCEEDED.
    try {
      Iterator<StreamCompleteResponse> slow =
          chat.withDeadlineAfter(200, TimeUnit.MILLISECONDS).streamComplete(request("demo", "Hello from Java"));
      while (slow.hasNext()) slow.next();
    } catch (StatusRuntimeException error) {
      System.out.println("deadline: " + error.getStatus().getCode() + " after 200 ms");
    }

    // Cancel: stop after the first delta; the gateway stops the call. A blocking stream is
    // cancelled through the Context it was started in.
    Context.CancellableContext call = Context.current().withCancellation();
    Context previous = call.attach();
    try {
      Iterator<StreamCompleteResponse> stream =
          chat.withDeadlineAfter(10, TimeUnit.SECONDS).streamComplete(request("demo", "Hello from Java"));
      while (stream.hasNext()) {
        if (stream.next().hasDelta()) call.cancel(null);
      }
    } catch (StatusRuntimeException error) {
      System.out.println("cancel: " + error.getStatus().getCode() + " after the first delta");
    } finally {
      call.detach(previous);
    }
  }
}
