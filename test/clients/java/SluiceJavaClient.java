// Calls Sluice over gRPC (h2c, prior knowledge) with grpc-java (Netty) and code generated
// from proto/ by protoc + grpc_java_plugin, and checks what a Java caller relies on:
// ListModels, Complete, StreamComplete, NOT_FOUND with google.rpc.ErrorInfo, a client
// deadline cutting a stream short, a W3C traceparent sent as gRPC metadata (the test
// checks the provider behind Sluice got the same trace), and an API key sent as gRPC
// metadata (accepted; missing or wrong: UNAUTHENTICATED; a model outside the tenant's list:
// PERMISSION_DENIED with ErrorInfo MODEL_NOT_ALLOWED; ListModels lists only the tenant's models).
//
// Built and run by test/clients/cross-language.test.ts.
// Usage: java SluiceJavaClient --addr 127.0.0.1:PORT --slow-addr 127.0.0.1:PORT2
//     --traced-addr 127.0.0.1:PORT3 --traceparent 00-<trace id>-<span id>-01
//     --keyed-addr 127.0.0.1:PORT4 --api-key KEY
// where the slow server streams words slowly enough for the deadline check, the traced
// server's model "traced" calls a provider over HTTP, and the keyed server has one tenant,
// whose key is KEY and who may call "demo" only (that server also serves a model "other").

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import google.rpc.ErrorDetails.ErrorInfo;
import google.rpc.StatusOuterClass;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.stub.MetadataUtils;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;
import sluice.v1.Chat.ContentPart;
import sluice.v1.Chat.FinishReason;
import sluice.v1.Chat.Message;
import sluice.v1.Chat.Role;
import sluice.v1.ChatServiceGrpc;
import sluice.v1.ChatServiceOuterClass.CompleteRequest;
import sluice.v1.ChatServiceOuterClass.CompleteResponse;
import sluice.v1.ChatServiceOuterClass.StreamCompleteResponse;
import sluice.v1.ModelServiceGrpc;
import sluice.v1.ModelServiceOuterClass.ListModelsRequest;
import sluice.v1.ModelServiceOuterClass.ListModelsResponse;

public final class SluiceJavaClient {
  private static final String PROMPT = "Hello from Java";
  /** Bounds every ordinary call, so a hung server fails the check instead of the test run. */
  private static final long CALL_TIMEOUT_MS = 10_000;
  /** Far below how long the slow server takes to stream the whole answer. */
  private static final long SHORT_DEADLINE_MS = 1_000;

  private static final Metadata.Key<byte[]> STATUS_DETAILS =
      Metadata.Key.of("grpc-status-details-bin", Metadata.BINARY_BYTE_MARSHALLER);

  private static final class CheckFailed extends RuntimeException {
    CheckFailed(String message) {
      super(message);
    }
  }

  private static void check(boolean ok, String message) {
    if (!ok) throw new CheckFailed(message);
  }

  private static CompleteRequest userRequest(String model, String text) {
    return CompleteRequest.newBuilder()
        .setModel(model)
        .addMessages(
            Message.newBuilder()
                .setRole(Role.ROLE_USER)
                .addContent(ContentPart.newBuilder().setText(text)))
        .build();
  }

  private static String messageText(Message message) {
    StringBuilder text = new StringBuilder();
    for (ContentPart part : message.getContentList()) text.append(part.getText());
    return text.toString();
  }

  private static void checkListModels(ManagedChannel channel) {
    ListModelsResponse res =
        ModelServiceGrpc.newBlockingStub(channel)
            .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS)
            .listModels(ListModelsRequest.getDefaultInstance());
    List<String> aliases = new ArrayList<>();
    for (var model : res.getModelsList()) aliases.add(model.getAlias());
    check(aliases.contains("demo"), "ListModels: no model with alias \"demo\" among " + aliases);
  }

  private static String checkComplete(ManagedChannel channel) {
    CompleteResponse res =
        ChatServiceGrpc.newBlockingStub(channel)
            .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS)
            .complete(userRequest("demo", PROMPT));
    check(
        res.getMessage().getRole() == Role.ROLE_ASSISTANT,
        "Complete: message role is " + res.getMessage().getRole() + ", want ROLE_ASSISTANT");
    String text = messageText(res.getMessage());
    check(!text.isEmpty(), "Complete: empty answer text");
    check(
        text.contains(PROMPT),
        "Complete: the demo answer should quote the prompt \"" + PROMPT + "\", got \"" + text + "\"");
    check(
        res.getFinishReason() == FinishReason.FINISH_REASON_STOP,
        "Complete: finish_reason is " + res.getFinishReason() + ", want FINISH_REASON_STOP");
    check(res.getUsage().getOutputTokens() > 0, "Complete: usage.output_tokens is 0");
    return text;
  }

  private static void checkStream(ManagedChannel channel, String unaryText) {
    Iterator<StreamCompleteResponse> stream =
        ChatServiceGrpc.newBlockingStub(channel)
            .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS)
            .streamComplete(userRequest("demo", PROMPT));
    List<StreamCompleteResponse> events = new ArrayList<>();
    stream.forEachRemaining(events::add);
    check(!events.isEmpty(), "StreamComplete: no events");
    StreamCompleteResponse first = events.get(0);
    check(first.hasStart(), "StreamComplete: first event is " + first.getEventCase() + ", want START");
    check(
        first.getStart().getProvider().equals("demo"),
        "StreamComplete: start.provider is \"" + first.getStart().getProvider() + "\", want \"demo\"");
    StreamCompleteResponse last = events.get(events.size() - 1);
    check(last.hasDone(), "StreamComplete: last event is " + last.getEventCase() + ", want DONE");
    check(
        last.getDone().getFinishReason() == FinishReason.FINISH_REASON_STOP,
        "StreamComplete: done.finish_reason is " + last.getDone().getFinishReason() + ", want FINISH_REASON_STOP");
    check(last.getDone().getUsage().getOutputTokens() > 0, "StreamComplete: done.usage.output_tokens is 0");
    StringBuilder text = new StringBuilder();
    int deltas = 0;
    for (int i = 1; i < events.size() - 1; i++) {
      StreamCompleteResponse event = events.get(i);
      check(event.hasDelta(), "StreamComplete: event " + i + " is " + event.getEventCase() + ", want DELTA");
      deltas++;
      text.append(event.getDelta().getText());
    }
    check(deltas >= 2, "StreamComplete: " + deltas + " delta events, want at least 2");
    check(
        text.toString().equals(unaryText),
        "StreamComplete: deltas joined are \"" + text + "\", but Complete answered \"" + unaryText + "\"");
  }

  /**
   * The google.rpc.ErrorInfo of a failed call: grpc-status-details-bin holds a serialized
   * google.rpc.Status whose details are Anys. `what` names the call in failure messages.
   */
  private static ErrorInfo errorInfo(StatusRuntimeException error, String what)
      throws InvalidProtocolBufferException {
    Metadata trailers = error.getTrailers();
    byte[] raw = trailers == null ? null : trailers.get(STATUS_DETAILS);
    check(raw != null, what + ": no grpc-status-details-bin trailer");
    StatusOuterClass.Status details = StatusOuterClass.Status.parseFrom(raw);
    int code = error.getStatus().getCode().value();
    check(
        details.getCode() == code,
        what + ": grpc-status-details-bin code " + details.getCode() + ", want " + code);
    ErrorInfo info = null;
    for (Any any : details.getDetailsList()) {
      if (any.is(ErrorInfo.class)) info = any.unpack(ErrorInfo.class);
    }
    check(info != null, what + ": no google.rpc.ErrorInfo among " + details.getDetailsCount() + " details");
    return info;
  }

  private static void checkNotFound(ManagedChannel channel) throws InvalidProtocolBufferException {
    StatusRuntimeException error = null;
    try {
      ChatServiceGrpc.newBlockingStub(channel)
          .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS)
          .complete(userRequest("no-such-model", PROMPT));
    } catch (StatusRuntimeException e) {
      error = e;
    }
    check(error != null, "Complete(no-such-model): succeeded, want NOT_FOUND");
    Status status = error.getStatus();
    check(
        status.getCode() == Status.Code.NOT_FOUND,
        "Complete(no-such-model): code " + status.getCode() + " (" + status.getDescription() + "), want NOT_FOUND");
    String description = String.valueOf(status.getDescription());
    check(
        description.contains("no-such-model"),
        "Complete(no-such-model): message \"" + description + "\" does not name the model");

    ErrorInfo info = errorInfo(error, "Complete(no-such-model)");
    check(
        info.getReason().equals("MODEL_NOT_FOUND") && info.getDomain().equals("sluice"),
        "Complete(no-such-model): ErrorInfo reason \"" + info.getReason() + "\" domain \"" + info.getDomain()
            + "\", want MODEL_NOT_FOUND / sluice");
  }

  private static void checkDeadline(ManagedChannel slowChannel) {
    Iterator<StreamCompleteResponse> stream =
        ChatServiceGrpc.newBlockingStub(slowChannel)
            .withDeadlineAfter(SHORT_DEADLINE_MS, TimeUnit.MILLISECONDS)
            .streamComplete(userRequest("demo", PROMPT));
    int events = 0;
    StatusRuntimeException error = null;
    try {
      while (stream.hasNext()) {
        StreamCompleteResponse event = stream.next();
        events++;
        check(
            !event.hasDone(),
            "deadline: the slow stream finished within " + SHORT_DEADLINE_MS + " ms; the deadline check needs a slower server");
      }
    } catch (StatusRuntimeException e) {
      error = e;
    }
    check(error != null, "deadline: the stream ended cleanly without done after " + events + " events");
    check(events > 0, "deadline: no event before the deadline (" + error.getStatus() + "); the stream never started");
    // The server may see the deadline first (DEADLINE_EXCEEDED) or the client's
    // RST_STREAM first (CANCELLED); either way the call must fail with one of these.
    Status.Code code = error.getStatus().getCode();
    check(
        code == Status.Code.DEADLINE_EXCEEDED || code == Status.Code.CANCELLED,
        "deadline: code " + code + " (" + error.getStatus().getDescription() + "), want DEADLINE_EXCEEDED or CANCELLED");
  }

  /** Sends a traceparent as gRPC metadata, as a Java service instrumented with OpenTelemetry does. */
  private static void checkTraceparent(ManagedChannel tracedChannel, String traceparent) {
    Metadata headers = new Metadata();
    headers.put(Metadata.Key.of("traceparent", Metadata.ASCII_STRING_MARSHALLER), traceparent);
    CompleteResponse res =
        ChatServiceGrpc.newBlockingStub(tracedChannel)
            .withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers))
            .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS)
            .complete(userRequest("traced", PROMPT));
    check(!messageText(res.getMessage()).isEmpty(), "Complete(traced) with a traceparent: empty answer text");
  }

  private static final Metadata.Key<String> AUTHORIZATION =
      Metadata.Key.of("authorization", Metadata.ASCII_STRING_MARSHALLER);

  /** A stub that sends `key` (if any) as a bearer token in each call's metadata, as a Java caller of a keyed gateway does. */
  private static ChatServiceGrpc.ChatServiceBlockingStub keyedChat(ManagedChannel channel, String key) {
    ChatServiceGrpc.ChatServiceBlockingStub stub = ChatServiceGrpc.newBlockingStub(channel);
    if (key != null) stub = stub.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(bearer(key)));
    return stub.withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS);
  }

  private static Metadata bearer(String key) {
    Metadata headers = new Metadata();
    headers.put(AUTHORIZATION, "Bearer " + key);
    return headers;
  }

  /** The error of a Complete that must fail; `what` names the call in failure messages. */
  private static StatusRuntimeException completeFailure(
      ChatServiceGrpc.ChatServiceBlockingStub stub, String model, String what, Status.Code want) {
    try {
      stub.complete(userRequest(model, PROMPT));
    } catch (StatusRuntimeException e) {
      Status status = e.getStatus();
      check(
          status.getCode() == want,
          what + ": code " + status.getCode() + " (" + status.getDescription() + "), want " + want);
      return e;
    }
    throw new CheckFailed(what + ": succeeded, want " + want);
  }

  /**
   * The API key checks, against a gateway with one tenant whose key is `key` and whose
   * models are "demo" only; the gateway also serves "other".
   */
  private static void checkKeyed(ManagedChannel keyedChannel, String key) throws InvalidProtocolBufferException {
    // (1) With the key as a bearer token: served.
    CompleteResponse res = keyedChat(keyedChannel, key).complete(userRequest("demo", PROMPT));
    check(!messageText(res.getMessage()).isEmpty(), "api key: Complete(demo) with the key: empty answer text");

    // (2) No key, (3) a wrong one: UNAUTHENTICATED.
    completeFailure(
        keyedChat(keyedChannel, null), "demo", "api key: Complete(demo) without a key", Status.Code.UNAUTHENTICATED);
    completeFailure(
        keyedChat(keyedChannel, key + "x"),
        "demo",
        "api key: Complete(demo) with a wrong key",
        Status.Code.UNAUTHENTICATED);

    // (4) A model outside the tenant's list: PERMISSION_DENIED with ErrorInfo MODEL_NOT_ALLOWED.
    String what = "api key: Complete(other) with the key";
    StatusRuntimeException denied =
        completeFailure(keyedChat(keyedChannel, key), "other", what, Status.Code.PERMISSION_DENIED);
    ErrorInfo info = errorInfo(denied, what);
    check(
        info.getReason().equals("MODEL_NOT_ALLOWED") && info.getDomain().equals("sluice"),
        what + ": ErrorInfo reason \"" + info.getReason() + "\" domain \"" + info.getDomain()
            + "\", want MODEL_NOT_ALLOWED / sluice");

    // (5) ListModels with the key: the tenant's models only.
    ListModelsResponse list =
        ModelServiceGrpc.newBlockingStub(keyedChannel)
            .withInterceptors(MetadataUtils.newAttachHeadersInterceptor(bearer(key)))
            .withDeadlineAfter(CALL_TIMEOUT_MS, TimeUnit.MILLISECONDS)
            .listModels(ListModelsRequest.getDefaultInstance());
    List<String> aliases = new ArrayList<>();
    for (var model : list.getModelsList()) aliases.add(model.getAlias());
    check(aliases.equals(List.of("demo")), "api key: ListModels with the key: aliases " + aliases + ", want only \"demo\"");
  }

  private static ManagedChannel channel(String addr) {
    // usePlaintext(): HTTP/2 with prior knowledge (h2c), as gRPC clients speak to a cleartext port.
    return ManagedChannelBuilder.forTarget(addr).usePlaintext().build();
  }

  public static void main(String[] args) throws Exception {
    String addr = null;
    String slowAddr = null;
    String tracedAddr = null;
    String traceparent = null;
    String keyedAddr = null;
    String apiKey = null;
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (args[i].equals("--addr")) addr = args[i + 1];
      else if (args[i].equals("--slow-addr")) slowAddr = args[i + 1];
      else if (args[i].equals("--traced-addr")) tracedAddr = args[i + 1];
      else if (args[i].equals("--traceparent")) traceparent = args[i + 1];
      else if (args[i].equals("--keyed-addr")) keyedAddr = args[i + 1];
      else if (args[i].equals("--api-key")) apiKey = args[i + 1];
    }
    if (addr == null || slowAddr == null || tracedAddr == null || traceparent == null || keyedAddr == null
        || apiKey == null) {
      System.err.println(
          "java client: FAIL: usage: SluiceJavaClient --addr HOST:PORT --slow-addr HOST:PORT"
              + " --traced-addr HOST:PORT --traceparent TRACEPARENT --keyed-addr HOST:PORT --api-key KEY");
      System.exit(2);
    }
    ManagedChannel channel = channel(addr);
    ManagedChannel slowChannel = channel(slowAddr);
    ManagedChannel tracedChannel = channel(tracedAddr);
    ManagedChannel keyedChannel = channel(keyedAddr);
    int exit = 0;
    try {
      checkListModels(channel);
      String unaryText = checkComplete(channel);
      checkStream(channel, unaryText);
      checkNotFound(channel);
      checkDeadline(slowChannel);
      checkTraceparent(tracedChannel, traceparent);
      checkKeyed(keyedChannel, apiKey);
      System.out.println(
          "java client: ok: ListModels, Complete, StreamComplete, NOT_FOUND+ErrorInfo, deadline, traceparent, "
              + "api key: bearer accepted, missing+wrong UNAUTHENTICATED, PERMISSION_DENIED+MODEL_NOT_ALLOWED, "
              + "ListModels scoped");
    } catch (CheckFailed e) {
      System.err.println("java client: FAIL: " + e.getMessage());
      exit = 1;
    } catch (StatusRuntimeException e) {
      System.err.println("java client: FAIL: unexpected gRPC error: " + e.getStatus());
      e.printStackTrace();
      exit = 1;
    } finally {
      channel.shutdownNow();
      slowChannel.shutdownNow();
      tracedChannel.shutdownNow();
      keyedChannel.shutdownNow();
      channel.awaitTermination(5, TimeUnit.SECONDS);
      slowChannel.awaitTermination(5, TimeUnit.SECONDS);
      tracedChannel.awaitTermination(5, TimeUnit.SECONDS);
      keyedChannel.awaitTermination(5, TimeUnit.SECONDS);
    }
    System.exit(exit);
  }
}
