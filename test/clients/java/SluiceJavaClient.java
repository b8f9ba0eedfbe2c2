// Calls Sluice over gRPC with grpc-java (Netty) and code generated from proto/ by protoc +
// grpc_java_plugin, and checks what a Java caller relies on: over h2c (prior knowledge),
// ListModels, Complete, StreamComplete, NOT_FOUND with google.rpc.ErrorInfo, a client
// deadline cutting a stream short, a W3C traceparent sent as gRPC metadata (the test
// checks the provider behind Sluice got the same trace), and an API key sent as gRPC
// metadata (accepted; missing or wrong: UNAUTHENTICATED; a model outside the tenant's list:
// PERMISSION_DENIED with ErrorInfo MODEL_NOT_ALLOWED; ListModels lists only the tenant's models).
// Over TLS (a Netty channel trusting the gateway's certificate), the other credential kinds:
// a JWT as a bearer token (accepted; expired: UNAUTHENTICATED; a model outside the tenant's
// list: PERMISSION_DENIED), a client certificate (accepted; none: UNAUTHENTICATED; one from
// another CA: UNAUTHENTICATED) and a signed request, HMAC-SHA256 over the gRPC body as sent
// (accepted; the same headers again, or a stale timestamp: UNAUTHENTICATED).
//
// Built and run by test/clients/cross-language.test.ts.
// Usage: java SluiceJavaClient --addr 127.0.0.1:PORT --slow-addr 127.0.0.1:PORT2
//     --traced-addr 127.0.0.1:PORT3 --traceparent 00-<trace id>-<span id>-01
//     --keyed-addr 127.0.0.1:PORT4 --api-key KEY
//     --secure-addr 127.0.0.1:PORT5 --ca-file CA.pem --client-cert CERT.pem --client-key KEY.pem
//     --foreign-cert CERT.pem --foreign-key KEY.pem --jwt JWT --expired-jwt JWT
//     --signing-key-id ID --signing-secret SECRET
// where the slow server streams words slowly enough for the deadline check, the traced
// server's model "traced" calls a provider over HTTP, and the keyed server has one tenant,
// whose key is KEY and who may call "demo" only (that server also serves a model "other").
// The secure server speaks TLS with the certificate in --ca-file (for 127.0.0.1), asks for
// (but does not require) a client certificate, and has three tenants, each allowed "demo"
// only (it also serves "other"): one named by the JWT, one by the client certificate (PEM,
// PKCS#8 key; --foreign-cert has the same names but another CA), one by the signing key.

import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.rpc.ErrorInfo;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Metadata;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.netty.NettyChannelBuilder;
import io.grpc.stub.MetadataUtils;
import io.netty.buffer.ByteBufAllocator;
import io.netty.handler.ssl.ApplicationProtocolNegotiator;
import io.netty.handler.ssl.JdkApplicationProtocolNegotiator;
import io.netty.handler.ssl.SslContext;
import io.netty.handler.ssl.SslContextBuilder;
import io.netty.handler.ssl.SslProvider;
import java.io.File;
import java.lang.reflect.Constructor;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.security.GeneralSecurityException;
import java.security.MessageDigest;
import java.security.SecureRandom;
import java.time.Instant;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.concurrent.TimeUnit;
import javax.crypto.Mac;
import javax.crypto.spec.SecretKeySpec;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLException;
import javax.net.ssl.SSLSessionContext;
import io.sluice.v1.ContentPart;
import io.sluice.v1.FinishReason;
import io.sluice.v1.Message;
import io.sluice.v1.Role;
import io.sluice.v1.ChatServiceGrpc;
import io.sluice.v1.CompleteRequest;
import io.sluice.v1.CompleteResponse;
import io.sluice.v1.StreamCompleteResponse;
import io.sluice.v1.ModelServiceGrpc;
import io.sluice.v1.ListModelsRequest;
import io.sluice.v1.ListModelsResponse;

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
    com.google.rpc.Status details = com.google.rpc.Status.parseFrom(raw);
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
    return chatWith(channel, key == null ? null : bearer(key));
  }

  /** A stub that sends `headers` (if any) as each call's metadata. */
  private static ChatServiceGrpc.ChatServiceBlockingStub chatWith(ManagedChannel channel, Metadata headers) {
    ChatServiceGrpc.ChatServiceBlockingStub stub = ChatServiceGrpc.newBlockingStub(channel);
    if (headers != null) stub = stub.withInterceptors(MetadataUtils.newAttachHeadersInterceptor(headers));
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

  /** What the secure gateway's callers present, from the command line. */
  private record Credentials(
      String secureAddr,
      String caFile,
      String clientCert,
      String clientKey,
      String foreignCert,
      String foreignKey,
      String jwt,
      String expiredJwt,
      String signingKeyId,
      String signingSecret) {}

  /**
   * Debian's Netty 4.1.48 ships without JdkAlpnApplicationProtocolNegotiator, so a JDK-provider
   * SslContext asking for ALPN (as GrpcSslContexts.forClient() does when, as here, there is no
   * netty-tcnative) fails to build: "JDK provider does not support ALPN protocol". Without ALPN
   * grpc-netty refuses the connection ("Failed ALPN negotiation"), as gRPC over TLS must agree
   * on "h2". JDK 9+ speaks ALPN natively, and the jar still has Netty's wrapper for that,
   * Java9SslEngine (package-private, hence reflection): this context takes its engines from an
   * ALPN-less JDK context and wraps each in one that offers "h2", whose negotiated protocol
   * SslHandler then reports to grpc-netty. Everything else is the inner context's.
   */
  private static final class JdkAlpnSslContext extends SslContext {
    private static final List<String> H2 = List.of("h2");
    private final SslContext inner;
    private final Constructor<?> java9Engine;

    /** Client side only: lists "h2" and accepts what the JDK engine negotiated; grpc-netty checks it is "h2". */
    private final JdkApplicationProtocolNegotiator h2 =
        new JdkApplicationProtocolNegotiator() {
          @Override
          public List<String> protocols() {
            return H2;
          }

          @Override
          public SslEngineWrapperFactory wrapperFactory() {
            return (engine, negotiator, isServer) -> wrap(engine);
          }

          @Override
          public ProtocolSelectorFactory protocolSelectorFactory() {
            throw new UnsupportedOperationException("client side only");
          }

          @Override
          public ProtocolSelectionListenerFactory protocolListenerFactory() {
            return (engine, protocols) ->
                new ProtocolSelectionListener() {
                  @Override
                  public void unsupported() {}

                  @Override
                  public void selected(String protocol) {}
                };
          }
        };

    JdkAlpnSslContext(SslContext inner) throws ReflectiveOperationException {
      this.inner = inner;
      java9Engine =
          Class.forName("io.netty.handler.ssl.Java9SslEngine")
              .getDeclaredConstructor(SSLEngine.class, JdkApplicationProtocolNegotiator.class, boolean.class);
      java9Engine.setAccessible(true);
    }

    private SSLEngine wrap(SSLEngine engine) {
      try {
        return (SSLEngine) java9Engine.newInstance(engine, h2, false);
      } catch (ReflectiveOperationException e) {
        throw new IllegalStateException("cannot wrap the JDK SSLEngine for ALPN", e);
      }
    }

    @Override
    public SSLEngine newEngine(ByteBufAllocator alloc) {
      return wrap(inner.newEngine(alloc));
    }

    @Override
    public SSLEngine newEngine(ByteBufAllocator alloc, String peerHost, int peerPort) {
      return wrap(inner.newEngine(alloc, peerHost, peerPort));
    }

    @Override
    public ApplicationProtocolNegotiator applicationProtocolNegotiator() {
      return h2;
    }

    @Override
    public boolean isClient() {
      return true;
    }

    @Override
    public List<String> cipherSuites() {
      return inner.cipherSuites();
    }

    @Override
    public long sessionCacheSize() {
      return inner.sessionCacheSize();
    }

    @Override
    public long sessionTimeout() {
      return inner.sessionTimeout();
    }

    @Override
    public SSLSessionContext sessionContext() {
      return inner.sessionContext();
    }
  }

  /**
   * A TLS channel that trusts only `caFile` (the gateway's self-signed certificate) and
   * presents `certFile`/`keyFile` as its client certificate when they are not null.
   * Hostname verification of 127.0.0.1 (grpc-netty turns it on) passes via the certificate's
   * IP SAN.
   */
  private static ManagedChannel tlsChannel(String addr, String caFile, String certFile, String keyFile)
      throws SSLException, ReflectiveOperationException {
    SslContextBuilder ssl = SslContextBuilder.forClient().sslProvider(SslProvider.JDK).trustManager(new File(caFile));
    if (certFile != null) ssl = ssl.keyManager(new File(certFile), new File(keyFile));
    int colon = addr.lastIndexOf(':');
    return NettyChannelBuilder.forAddress(addr.substring(0, colon), Integer.parseInt(addr.substring(colon + 1)))
        .sslContext(new JdkAlpnSslContext(ssl.build()))
        .build();
  }

  /** Completes "demo" with `stub`, which must be served; `what` names the call in failure messages. */
  private static void completeServed(ChatServiceGrpc.ChatServiceBlockingStub stub, String what) {
    CompleteResponse res;
    try {
      res = stub.complete(userRequest("demo", PROMPT));
    } catch (StatusRuntimeException e) {
      throw new CheckFailed(
          what + ": code " + e.getStatus().getCode() + " (" + e.getStatus().getDescription() + "), want OK");
    }
    check(!messageText(res.getMessage()).isEmpty(), what + ": empty answer text");
  }

  private static final Metadata.Key<String> KEY_ID = Metadata.Key.of("x-sluice-key-id", Metadata.ASCII_STRING_MARSHALLER);
  private static final Metadata.Key<String> TIMESTAMP =
      Metadata.Key.of("x-sluice-timestamp", Metadata.ASCII_STRING_MARSHALLER);
  private static final Metadata.Key<String> NONCE = Metadata.Key.of("x-sluice-nonce", Metadata.ASCII_STRING_MARSHALLER);
  private static final Metadata.Key<String> SIGNATURE =
      Metadata.Key.of("x-sluice-signature", Metadata.ASCII_STRING_MARSHALLER);
  private static final String COMPLETE_PATH = "/" + ChatServiceGrpc.getCompleteMethod().getFullMethodName();
  private static final SecureRandom RANDOM = new SecureRandom();
  /** Far outside the gateway's signature window (300 s by default). */
  private static final long STALE_SEC = 3600;

  /**
   * The body of a unary gRPC call exactly as grpc-java sends it, which is what the gateway
   * hashes: the 5-byte envelope (flag 0 = uncompressed, 4-byte big-endian length) and the
   * serialized message, as the protobuf marshaller writes it.
   */
  private static byte[] grpcBody(CompleteRequest request) {
    byte[] message = request.toByteArray();
    return ByteBuffer.allocate(5 + message.length).put((byte) 0).putInt(message.length).put(message).array();
  }

  /**
   * The signing headers of a Complete of `request` at unix time `timestamp`, with a fresh
   * nonce: HMAC-SHA256 (keyed with the secret's UTF-8 bytes), in lowercase hex, of METHOD,
   * PATH, TIMESTAMP, NONCE and the hex SHA-256 of the body, one per line.
   */
  private static Metadata signedHeaders(Credentials creds, CompleteRequest request, long timestamp)
      throws GeneralSecurityException {
    byte[] nonceBytes = new byte[16];
    RANDOM.nextBytes(nonceBytes);
    String nonce = HexFormat.of().formatHex(nonceBytes);
    String bodyHash = HexFormat.of().formatHex(MessageDigest.getInstance("SHA-256").digest(grpcBody(request)));
    String canonical = "POST\n" + COMPLETE_PATH + "\n" + timestamp + "\n" + nonce + "\n" + bodyHash;
    Mac mac = Mac.getInstance("HmacSHA256");
    mac.init(new SecretKeySpec(creds.signingSecret().getBytes(StandardCharsets.UTF_8), "HmacSHA256"));
    String signature = HexFormat.of().formatHex(mac.doFinal(canonical.getBytes(StandardCharsets.UTF_8)));
    Metadata headers = new Metadata();
    headers.put(KEY_ID, creds.signingKeyId());
    headers.put(TIMESTAMP, Long.toString(timestamp));
    headers.put(NONCE, nonce);
    headers.put(SIGNATURE, signature);
    return headers;
  }

  /** The JWT checks, on a TLS channel without a client certificate. */
  private static void checkJwt(ManagedChannel tls, Credentials creds) {
    // No credential at all: the secure gateway has no anonymous tenant.
    completeFailure(chatWith(tls, null), "demo", "tls: Complete(demo) without credentials", Status.Code.UNAUTHENTICATED);
    completeServed(chatWith(tls, bearer(creds.jwt())), "jwt: Complete(demo) with the JWT");
    completeFailure(
        chatWith(tls, bearer(creds.expiredJwt())),
        "demo",
        "jwt: Complete(demo) with the expired JWT",
        Status.Code.UNAUTHENTICATED);
    completeFailure(
        chatWith(tls, bearer(creds.jwt())), "other", "jwt: Complete(other) with the JWT", Status.Code.PERMISSION_DENIED);
  }

  /** The signed-request checks, on a TLS channel without a client certificate. */
  private static void checkSigned(ManagedChannel tls, Credentials creds) throws GeneralSecurityException {
    // The signature covers the body, so the request signed must be the very one sent.
    CompleteRequest request = userRequest("demo", PROMPT);
    long now = Instant.now().getEpochSecond();
    Metadata signed = signedHeaders(creds, request, now);
    completeServed(chatWith(tls, signed), "signed: Complete(demo) signed");

    // The same headers again: a valid signature, but its nonce was used within the window.
    completeFailure(chatWith(tls, signed), "demo", "signed: Complete(demo) replayed", Status.Code.UNAUTHENTICATED);

    // Correctly signed, with a fresh nonce, but an hour old: outside the window.
    completeFailure(
        chatWith(tls, signedHeaders(creds, request, now - STALE_SEC)),
        "demo",
        "signed: Complete(demo) with a timestamp " + STALE_SEC + " s old",
        Status.Code.UNAUTHENTICATED);
  }

  /**
   * The credential checks against the secure gateway: a JWT and signed requests on a TLS
   * channel without a client certificate, then a channel per client certificate (the
   * gateway's CA's, accepted; another CA's, UNAUTHENTICATED, as the gateway asks for a
   * certificate without requiring one, so the handshake itself succeeds).
   */
  private static void checkCredentials(Credentials creds) throws Exception {
    ManagedChannel tls = tlsChannel(creds.secureAddr(), creds.caFile(), null, null);
    ManagedChannel withCert = tlsChannel(creds.secureAddr(), creds.caFile(), creds.clientCert(), creds.clientKey());
    ManagedChannel withForeign = tlsChannel(creds.secureAddr(), creds.caFile(), creds.foreignCert(), creds.foreignKey());
    try {
      checkJwt(tls, creds);
      checkSigned(tls, creds);
      completeServed(chatWith(withCert, null), "client cert: Complete(demo) with the client certificate");
      completeFailure(
          chatWith(withForeign, null),
          "demo",
          "client cert: Complete(demo) with a certificate from another CA",
          Status.Code.UNAUTHENTICATED);
    } finally {
      for (ManagedChannel c : List.of(tls, withCert, withForeign)) c.shutdownNow();
      for (ManagedChannel c : List.of(tls, withCert, withForeign)) c.awaitTermination(5, TimeUnit.SECONDS);
    }
  }

  private static ManagedChannel channel(String addr) {
    // usePlaintext(): HTTP/2 with prior knowledge (h2c), as gRPC clients speak to a cleartext port.
    return ManagedChannelBuilder.forTarget(addr).usePlaintext().build();
  }

  /** The flags, all required, in the order the harness passes them. */
  private static final List<String> FLAGS =
      List.of(
          "addr", "slow-addr", "traced-addr", "traceparent", "keyed-addr", "api-key", "secure-addr", "ca-file",
          "client-cert", "client-key", "foreign-cert", "foreign-key", "jwt", "expired-jwt", "signing-key-id",
          "signing-secret");

  public static void main(String[] args) throws Exception {
    Map<String, String> flags = new HashMap<>();
    for (int i = 0; i + 1 < args.length; i += 2) {
      if (args[i].startsWith("--") && FLAGS.contains(args[i].substring(2))) flags.put(args[i].substring(2), args[i + 1]);
    }
    if (!flags.keySet().containsAll(FLAGS)) {
      StringBuilder usage = new StringBuilder("java client: FAIL: usage: SluiceJavaClient");
      for (String flag : FLAGS) usage.append(" --").append(flag).append(' ').append(flag.toUpperCase().replace('-', '_'));
      List<String> missing = new ArrayList<>(FLAGS);
      missing.removeAll(flags.keySet());
      System.err.println(usage + " (missing: " + String.join(", ", missing) + ")");
      System.exit(2);
    }
    String addr = flags.get("addr");
    String slowAddr = flags.get("slow-addr");
    String tracedAddr = flags.get("traced-addr");
    String traceparent = flags.get("traceparent");
    String keyedAddr = flags.get("keyed-addr");
    String apiKey = flags.get("api-key");
    Credentials creds =
        new Credentials(
            flags.get("secure-addr"),
            flags.get("ca-file"),
            flags.get("client-cert"),
            flags.get("client-key"),
            flags.get("foreign-cert"),
            flags.get("foreign-key"),
            flags.get("jwt"),
            flags.get("expired-jwt"),
            flags.get("signing-key-id"),
            flags.get("signing-secret"));
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
      checkCredentials(creds);
      System.out.println(
          "java client: ok: ListModels, Complete, StreamComplete, NOT_FOUND+ErrorInfo, deadline, traceparent, "
              + "api key: bearer accepted, missing+wrong UNAUTHENTICATED, PERMISSION_DENIED+MODEL_NOT_ALLOWED, "
              + "ListModels scoped, "
              + "credentials: jwt accepted+expired UNAUTHENTICATED+other PERMISSION_DENIED, "
              + "client cert accepted+none UNAUTHENTICATED+foreign UNAUTHENTICATED, "
              + "signed accepted+replayed UNAUTHENTICATED+stale UNAUTHENTICATED");
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
