// Command sluice-go-client calls Sluice over gRPC (h2c, prior knowledge) with grpc-go and
// code generated from proto/ by protoc-gen-go and protoc-gen-go-grpc, and checks what a Go
// caller relies on: ListModels, Complete, StreamComplete, NOT_FOUND with
// google.rpc.ErrorInfo, a client deadline cutting a stream short, a W3C traceparent
// sent as gRPC metadata (the test checks the provider behind Sluice got the same trace),
// and an API key sent as gRPC metadata (accepted; missing or wrong: UNAUTHENTICATED; a
// model outside the tenant's list: PERMISSION_DENIED with ErrorInfo MODEL_NOT_ALLOWED;
// ListModels lists only the tenant's models), and, over TLS, the other credential kinds: a
// JWT bearer token (valid: accepted; expired: UNAUTHENTICATED; a model outside the tenant's
// list: PERMISSION_DENIED), a client certificate (the gateway's CA: accepted; none or
// another CA's: UNAUTHENTICATED) and a signed request (accepted; replayed or stale:
// UNAUTHENTICATED).
//
// Built by test/clients/cross-language.test.ts in GOPATH mode (no modules, no network).
// Usage: sluice-go-client -addr 127.0.0.1:PORT -slow-addr 127.0.0.1:PORT2
//
//	-traced-addr 127.0.0.1:PORT3 -traceparent 00-<trace id>-<span id>-01
//	-keyed-addr 127.0.0.1:PORT4 -api-key KEY
//	-secure-addr 127.0.0.1:PORT5 -ca-file CA.pem
//	-client-cert CERT.pem -client-key KEY.pem -foreign-cert CERT.pem -foreign-key KEY.pem
//	-jwt JWT -expired-jwt JWT -signing-key-id ID -signing-secret SECRET
//
// where the slow server streams words slowly enough for the deadline check, the traced
// server's model "traced" calls a provider over HTTP, and the keyed server has one tenant,
// whose key is KEY and who may call "demo" only (that server also serves a model "other").
// The secure server speaks TLS with the certificate CA.pem (for 127.0.0.1), asks for (but
// does not require) a client certificate, and has three tenants, each allowed "demo" only
// (it also serves "other"): one named by the JWT, one by a client certificate from its
// client CA (-client-cert; -foreign-cert has the same names from another CA), one by the
// signing key ID/SECRET.
package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/binary"
	"encoding/hex"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	rpcpb "sluiceclient/gen/googlerpc"
	sluicev1 "sluiceclient/gen/sluicev1"
)

const prompt = "Hello from Go"

// Bounds every ordinary call, so a hung server fails the check instead of the test run.
const callTimeout = 10 * time.Second

// Far below how long the slow server takes to stream the whole answer.
const shortDeadline = 1 * time.Second

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "go client: FAIL: "+format+"\n", args...)
	os.Exit(1)
}

func dial(addr string) *grpc.ClientConn {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	conn, err := grpc.DialContext(ctx, addr, grpc.WithInsecure(), grpc.WithBlock())
	if err != nil {
		fail("dial %s: %v", addr, err)
	}
	return conn
}

func userRequest(model, text string) *sluicev1.CompleteRequest {
	return &sluicev1.CompleteRequest{
		Model: model,
		Messages: []*sluicev1.Message{{
			Role:    sluicev1.Role_ROLE_USER,
			Content: []*sluicev1.ContentPart{{Part: &sluicev1.ContentPart_Text{Text: text}}},
		}},
	}
}

func messageText(m *sluicev1.Message) string {
	var b strings.Builder
	for _, part := range m.GetContent() {
		b.WriteString(part.GetText())
	}
	return b.String()
}

func checkListModels(models sluicev1.ModelServiceClient) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	res, err := models.ListModels(ctx, &sluicev1.ListModelsRequest{})
	if err != nil {
		fail("ListModels: %v", err)
	}
	var aliases []string
	for _, m := range res.GetModels() {
		aliases = append(aliases, m.GetAlias())
		if m.GetAlias() == "demo" {
			return
		}
	}
	fail("ListModels: no model with alias \"demo\" among %q", aliases)
}

func checkComplete(chat sluicev1.ChatServiceClient) string {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	res, err := chat.Complete(ctx, userRequest("demo", prompt))
	if err != nil {
		fail("Complete: %v", err)
	}
	if role := res.GetMessage().GetRole(); role != sluicev1.Role_ROLE_ASSISTANT {
		fail("Complete: message role is %v, want ROLE_ASSISTANT", role)
	}
	text := messageText(res.GetMessage())
	if text == "" {
		fail("Complete: empty answer text")
	}
	if !strings.Contains(text, prompt) {
		fail("Complete: the demo answer should quote the prompt %q, got %q", prompt, text)
	}
	if fr := res.GetFinishReason(); fr != sluicev1.FinishReason_FINISH_REASON_STOP {
		fail("Complete: finish_reason is %v, want FINISH_REASON_STOP", fr)
	}
	if res.GetUsage().GetOutputTokens() == 0 {
		fail("Complete: usage.output_tokens is 0")
	}
	return text
}

func checkStream(chat sluicev1.ChatServiceClient, unaryText string) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	stream, err := chat.StreamComplete(ctx, userRequest("demo", prompt))
	if err != nil {
		fail("StreamComplete: %v", err)
	}
	var events []*sluicev1.StreamCompleteResponse
	for {
		ev, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			fail("StreamComplete: after %d events: %v", len(events), err)
		}
		events = append(events, ev)
	}
	if len(events) == 0 {
		fail("StreamComplete: no events")
	}
	start := events[0].GetStart()
	if start == nil {
		fail("StreamComplete: first event is %T, want start", events[0].GetEvent())
	}
	if start.GetProvider() != "demo" {
		fail("StreamComplete: start.provider is %q, want \"demo\"", start.GetProvider())
	}
	done := events[len(events)-1].GetDone()
	if done == nil {
		fail("StreamComplete: last event is %T, want done", events[len(events)-1].GetEvent())
	}
	if done.GetFinishReason() != sluicev1.FinishReason_FINISH_REASON_STOP {
		fail("StreamComplete: done.finish_reason is %v, want FINISH_REASON_STOP", done.GetFinishReason())
	}
	if done.GetUsage().GetOutputTokens() == 0 {
		fail("StreamComplete: done.usage.output_tokens is 0")
	}
	var text strings.Builder
	deltas := 0
	for i, ev := range events[1 : len(events)-1] {
		d := ev.GetDelta()
		if d == nil {
			fail("StreamComplete: event %d is %T, want delta", i+1, ev.GetEvent())
		}
		deltas++
		text.WriteString(d.GetText())
	}
	if deltas < 2 {
		fail("StreamComplete: %d delta events, want at least 2", deltas)
	}
	if text.String() != unaryText {
		fail("StreamComplete: deltas joined are %q, but Complete answered %q", text.String(), unaryText)
	}
}

// errorInfo decodes the google.rpc.ErrorInfo among a status's details, if there is one.
// Details() decodes grpc-status-details-bin; the Any resolves to our generated
// google.rpc.ErrorInfo through the global type registry. A detail of a type this binary
// does not know comes back as an error value; only ErrorInfo matters here, so those are
// returned for the failure message, not fatal.
func errorInfo(st *status.Status) (info *rpcpb.ErrorInfo, undecoded []string) {
	for _, d := range st.Details() {
		switch v := d.(type) {
		case *rpcpb.ErrorInfo:
			info = v
		case error:
			undecoded = append(undecoded, v.Error())
		}
	}
	return info, undecoded
}

func checkNotFound(chat sluicev1.ChatServiceClient) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	_, err := chat.Complete(ctx, userRequest("no-such-model", prompt))
	if err == nil {
		fail("Complete(no-such-model): succeeded, want NOT_FOUND")
	}
	st, _ := status.FromError(err)
	if st.Code() != codes.NotFound {
		fail("Complete(no-such-model): code %v (%q), want NotFound", st.Code(), st.Message())
	}
	if !strings.Contains(st.Message(), "no-such-model") {
		fail("Complete(no-such-model): message %q does not name the model", st.Message())
	}
	info, undecoded := errorInfo(st)
	if info == nil {
		fail("Complete(no-such-model): no google.rpc.ErrorInfo among %d status details (undecodable: %q)", len(st.Details()), undecoded)
	}
	if info.GetReason() != "MODEL_NOT_FOUND" || info.GetDomain() != "sluice" {
		fail("Complete(no-such-model): ErrorInfo reason %q domain %q, want MODEL_NOT_FOUND / sluice", info.GetReason(), info.GetDomain())
	}
}

func checkDeadline(slowChat sluicev1.ChatServiceClient) {
	ctx, cancel := context.WithTimeout(context.Background(), shortDeadline)
	defer cancel()
	stream, err := slowChat.StreamComplete(ctx, userRequest("demo", prompt))
	if err == nil {
		events := 0
		for {
			var ev *sluicev1.StreamCompleteResponse
			ev, err = stream.Recv()
			if err != nil {
				break
			}
			events++
			if ev.GetDone() != nil {
				fail("deadline: the slow stream finished within %v; the deadline check needs a slower server", shortDeadline)
			}
		}
		if err == io.EOF {
			fail("deadline: the stream ended cleanly without done after %d events", events)
		}
		if events == 0 {
			fail("deadline: no event before the deadline (%v); the stream never started", err)
		}
	}
	// The server may see the deadline first (DEADLINE_EXCEEDED) or the client's
	// RST_STREAM first (CANCELLED); either way the call must fail with one of these.
	code := status.Code(err)
	if code != codes.DeadlineExceeded && code != codes.Canceled {
		fail("deadline: code %v (%v), want DeadlineExceeded or Canceled", code, err)
	}
}

// checkTraceparent sends a traceparent as gRPC metadata, as a Go service instrumented with
// OpenTelemetry does; the test reads what the provider behind Sluice received.
func checkTraceparent(tracedChat sluicev1.ChatServiceClient, traceparent string) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	ctx = metadata.AppendToOutgoingContext(ctx, "traceparent", traceparent)
	res, err := tracedChat.Complete(ctx, userRequest("traced", prompt))
	if err != nil {
		fail("Complete(traced) with a traceparent: %v", err)
	}
	if messageText(res.GetMessage()) == "" {
		fail("Complete(traced) with a traceparent: empty answer text")
	}
}

// withKey adds the API key to a call's metadata as a bearer token, as a Go caller of a
// keyed gateway does.
func withKey(ctx context.Context, key string) context.Context {
	return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+key)
}

// checkKeyed runs the API key checks against a gateway with one tenant, whose key is
// `key` and whose models are "demo" only; the gateway also serves "other".
func checkKeyed(conn *grpc.ClientConn, key string) {
	chat := sluicev1.NewChatServiceClient(conn)
	complete := func(ctx context.Context, model string) (*sluicev1.CompleteResponse, error) {
		ctx, cancel := context.WithTimeout(ctx, callTimeout)
		defer cancel()
		return chat.Complete(ctx, userRequest(model, prompt))
	}

	// (1) With the key as a bearer token: served.
	res, err := complete(withKey(context.Background(), key), "demo")
	if err != nil {
		fail("api key: Complete(demo) with the key: %v", err)
	}
	if messageText(res.GetMessage()) == "" {
		fail("api key: Complete(demo) with the key: empty answer text")
	}

	// (2) No key, (3) a wrong one: UNAUTHENTICATED.
	refused := []struct {
		what string
		ctx  context.Context
	}{
		{"without a key", context.Background()},
		{"with a wrong key", withKey(context.Background(), key+"x")},
	}
	for _, r := range refused {
		_, err := complete(r.ctx, "demo")
		if err == nil {
			fail("api key: Complete(demo) %s: succeeded, want Unauthenticated", r.what)
		}
		if st, _ := status.FromError(err); st.Code() != codes.Unauthenticated {
			fail("api key: Complete(demo) %s: code %v (%q), want Unauthenticated", r.what, st.Code(), st.Message())
		}
	}

	// (4) A model outside the tenant's list: PERMISSION_DENIED with ErrorInfo MODEL_NOT_ALLOWED.
	_, err = complete(withKey(context.Background(), key), "other")
	if err == nil {
		fail("api key: Complete(other) with the key: succeeded, want PermissionDenied")
	}
	st, _ := status.FromError(err)
	if st.Code() != codes.PermissionDenied {
		fail("api key: Complete(other) with the key: code %v (%q), want PermissionDenied", st.Code(), st.Message())
	}
	info, undecoded := errorInfo(st)
	if info == nil {
		fail("api key: Complete(other): no google.rpc.ErrorInfo among %d status details (undecodable: %q)", len(st.Details()), undecoded)
	}
	if info.GetReason() != "MODEL_NOT_ALLOWED" || info.GetDomain() != "sluice" {
		fail("api key: Complete(other): ErrorInfo reason %q domain %q, want MODEL_NOT_ALLOWED / sluice", info.GetReason(), info.GetDomain())
	}

	// (5) ListModels with the key: the tenant's models only.
	ctx, cancel := context.WithTimeout(withKey(context.Background(), key), callTimeout)
	defer cancel()
	list, err := sluicev1.NewModelServiceClient(conn).ListModels(ctx, &sluicev1.ListModelsRequest{})
	if err != nil {
		fail("api key: ListModels with the key: %v", err)
	}
	var aliases []string
	for _, m := range list.GetModels() {
		aliases = append(aliases, m.GetAlias())
	}
	if len(aliases) != 1 || aliases[0] != "demo" {
		fail("api key: ListModels with the key: aliases %q, want only \"demo\"", aliases)
	}
}

// The path signed requests sign: the gRPC method's HTTP/2 :path.
const completePath = "/sluice.v1.ChatService/Complete"

// How far in the past the stale signed request is dated: far outside the gateway's
// window (300 s by default).
const staleBy = 3600 * time.Second

// secureConfig is what every TLS connection to the secure gateway shares: trust in its
// self-signed certificate (from caFile) and nothing else.
func secureConfig(caFile string) *tls.Config {
	pem, err := os.ReadFile(caFile)
	if err != nil {
		fail("credentials: read -ca-file: %v", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		fail("credentials: no certificate in -ca-file %s", caFile)
	}
	return &tls.Config{RootCAs: pool}
}

// withClientCert adds a client certificate to a TLS config. It is presented through
// GetClientCertificate rather than Certificates: from Certificates, crypto/tls sends only
// a certificate whose issuer the server lists as acceptable, so the foreign certificate
// would silently not be sent and the foreign check would only repeat the "none" one.
func withClientCert(config *tls.Config, certFile, keyFile string) *tls.Config {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		fail("credentials: load client certificate %s / %s: %v", certFile, keyFile, err)
	}
	config = config.Clone()
	config.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
		return &cert, nil
	}
	return config
}

func dialTLS(addr string, config *tls.Config) *grpc.ClientConn {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	conn, err := grpc.DialContext(ctx, addr, grpc.WithTransportCredentials(credentials.NewTLS(config)), grpc.WithBlock())
	if err != nil {
		fail("dial %s over TLS: %v", addr, err)
	}
	return conn
}

// wireBody is the request body exactly as grpc-go sends it, which is what a signature
// covers: the 5-byte envelope (uncompressed flag, big-endian length) and the message as
// marshaled by the codec grpc-go itself uses for it.
func wireBody(req *sluicev1.CompleteRequest) []byte {
	msg, err := encoding.GetCodec(grpcproto.Name).Marshal(req)
	if err != nil {
		fail("credentials: marshal the signed request: %v", err)
	}
	body := make([]byte, 5, 5+len(msg))
	binary.BigEndian.PutUint32(body[1:], uint32(len(msg)))
	return append(body, msg...)
}

// newNonce is 32 hex characters from crypto/rand: unique per request, as the gateway
// refuses a nonce it has seen with the key within its window.
func newNonce() string {
	b := make([]byte, 16)
	if _, err := rand.Read(b); err != nil {
		fail("credentials: nonce: %v", err)
	}
	return hex.EncodeToString(b)
}

// signedHeaders are the metadata pairs of a signed Complete of req: the HMAC-SHA256, with
// the secret's bytes as the key, of method, path, timestamp, nonce and the body's SHA-256.
func signedHeaders(keyID, secret string, req *sluicev1.CompleteRequest, at time.Time, nonce string) []string {
	timestamp := strconv.FormatInt(at.Unix(), 10)
	bodyHash := sha256.Sum256(wireBody(req))
	mac := hmac.New(sha256.New, []byte(secret))
	mac.Write([]byte("POST\n" + completePath + "\n" + timestamp + "\n" + nonce + "\n" + hex.EncodeToString(bodyHash[:])))
	return []string{
		"x-sluice-key-id", keyID,
		"x-sluice-timestamp", timestamp,
		"x-sluice-nonce", nonce,
		"x-sluice-signature", hex.EncodeToString(mac.Sum(nil)),
	}
}

// completeWith calls Complete(req) with the given metadata pairs (none: no credential).
func completeWith(chat sluicev1.ChatServiceClient, req *sluicev1.CompleteRequest, md ...string) (*sluicev1.CompleteResponse, error) {
	ctx, cancel := context.WithTimeout(context.Background(), callTimeout)
	defer cancel()
	if len(md) > 0 {
		ctx = metadata.AppendToOutgoingContext(ctx, md...)
	}
	return chat.Complete(ctx, req)
}

// expectServed fails unless the call succeeded with an answer.
func expectServed(what string, res *sluicev1.CompleteResponse, err error) {
	if err != nil {
		fail("credentials: %s: %v", what, err)
	}
	if messageText(res.GetMessage()) == "" {
		fail("credentials: %s: empty answer text", what)
	}
}

// expectCode fails unless the call failed with want.
func expectCode(what string, err error, want codes.Code) {
	if err == nil {
		fail("credentials: %s: succeeded, want %v", what, want)
	}
	if st, _ := status.FromError(err); st.Code() != want {
		fail("credentials: %s: code %v (%q), want %v", what, st.Code(), st.Message(), want)
	}
}

// credentialFlags are the secure gateway and what its clients present, from the flags.
type credentialFlags struct {
	addr, caFile                string
	clientCert, clientKey       string
	foreignCert, foreignKey     string
	jwt, expiredJWT             string
	signingKeyID, signingSecret string
}

// checkCredentials runs the JWT, client certificate and signed request checks against the
// secure gateway, whose three tenants (one per credential kind) may call "demo" only.
func checkCredentials(f credentialFlags) {
	base := secureConfig(f.caFile)
	conn := dialTLS(f.addr, base)
	defer conn.Close()
	chat := sluicev1.NewChatServiceClient(conn)
	demo := userRequest("demo", prompt)
	bearer := func(token string) []string { return []string{"authorization", "Bearer " + token} }

	// JWT: (1) no credential at all, (2) a valid token, (3) an expired one, (4) a valid
	// one for a model outside the tenant's list.
	_, err := completeWith(chat, demo)
	expectCode("Complete(demo) over TLS without a credential", err, codes.Unauthenticated)
	res, err := completeWith(chat, demo, bearer(f.jwt)...)
	expectServed("Complete(demo) with the JWT", res, err)
	_, err = completeWith(chat, demo, bearer(f.expiredJWT)...)
	expectCode("Complete(demo) with the expired JWT", err, codes.Unauthenticated)
	_, err = completeWith(chat, userRequest("other", prompt), bearer(f.jwt)...)
	expectCode("Complete(other) with the JWT", err, codes.PermissionDenied)

	// Signed requests: (5) signed now, (6) the very same headers and body again, (7) a
	// fresh nonce but dated outside the window, correctly signed for that date.
	signed := signedHeaders(f.signingKeyID, f.signingSecret, demo, time.Now(), newNonce())
	res, err = completeWith(chat, demo, signed...)
	expectServed("signed Complete(demo)", res, err)
	_, err = completeWith(chat, demo, signed...)
	expectCode("signed Complete(demo) replayed", err, codes.Unauthenticated)
	stale := signedHeaders(f.signingKeyID, f.signingSecret, demo, time.Now().Add(-staleBy), newNonce())
	_, err = completeWith(chat, demo, stale...)
	expectCode("signed Complete(demo) dated an hour ago", err, codes.Unauthenticated)

	// Client certificates, each on its own connection as it is part of the handshake:
	// (8) one from the gateway's client CA, (9) the same names from another CA.
	certConn := dialTLS(f.addr, withClientCert(base, f.clientCert, f.clientKey))
	defer certConn.Close()
	res, err = completeWith(sluicev1.NewChatServiceClient(certConn), demo)
	expectServed("Complete(demo) with the client certificate", res, err)
	foreignConn := dialTLS(f.addr, withClientCert(base, f.foreignCert, f.foreignKey))
	defer foreignConn.Close()
	_, err = completeWith(sluicev1.NewChatServiceClient(foreignConn), demo)
	expectCode("Complete(demo) with the foreign client certificate", err, codes.Unauthenticated)
}

func main() {
	addr := flag.String("addr", "", "host:port of a Sluice serving model \"demo\"")
	slowAddr := flag.String("slow-addr", "", "host:port of a Sluice whose demo model streams slowly")
	tracedAddr := flag.String("traced-addr", "", "host:port of a Sluice whose model \"traced\" calls a provider over HTTP")
	traceparent := flag.String("traceparent", "", "the W3C traceparent the traced call carries")
	keyedAddr := flag.String("keyed-addr", "", "host:port of a Sluice with one tenant, who may call \"demo\" only")
	apiKey := flag.String("api-key", "", "that tenant's API key")
	var cred credentialFlags
	flag.StringVar(&cred.addr, "secure-addr", "", "host:port of a Sluice over TLS with a JWT, a client certificate and a signed-request tenant")
	flag.StringVar(&cred.caFile, "ca-file", "", "PEM certificate of that Sluice (self-signed, for 127.0.0.1)")
	flag.StringVar(&cred.clientCert, "client-cert", "", "PEM client certificate from that Sluice's client CA")
	flag.StringVar(&cred.clientKey, "client-key", "", "its PEM (PKCS#8) key")
	flag.StringVar(&cred.foreignCert, "foreign-cert", "", "PEM client certificate with the same names from another CA")
	flag.StringVar(&cred.foreignKey, "foreign-key", "", "its PEM (PKCS#8) key")
	flag.StringVar(&cred.jwt, "jwt", "", "a valid JWT for the JWT tenant")
	flag.StringVar(&cred.expiredJWT, "expired-jwt", "", "an expired JWT for the JWT tenant")
	flag.StringVar(&cred.signingKeyID, "signing-key-id", "", "the signed-request tenant's key id")
	flag.StringVar(&cred.signingSecret, "signing-secret", "", "that key's secret")
	flag.Parse()
	required := []string{*addr, *slowAddr, *tracedAddr, *traceparent, *keyedAddr, *apiKey,
		cred.addr, cred.caFile, cred.clientCert, cred.clientKey, cred.foreignCert, cred.foreignKey,
		cred.jwt, cred.expiredJWT, cred.signingKeyID, cred.signingSecret}
	for _, value := range required {
		if value == "" {
			fail("usage: sluice-go-client -addr HOST:PORT -slow-addr HOST:PORT -traced-addr HOST:PORT -traceparent TRACEPARENT " +
				"-keyed-addr HOST:PORT -api-key KEY -secure-addr HOST:PORT -ca-file PEM -client-cert PEM -client-key PEM " +
				"-foreign-cert PEM -foreign-key PEM -jwt JWT -expired-jwt JWT -signing-key-id ID -signing-secret SECRET")
		}
	}
	conn := dial(*addr)
	defer conn.Close()
	slowConn := dial(*slowAddr)
	defer slowConn.Close()
	tracedConn := dial(*tracedAddr)
	defer tracedConn.Close()
	keyedConn := dial(*keyedAddr)
	defer keyedConn.Close()
	chat := sluicev1.NewChatServiceClient(conn)

	checkListModels(sluicev1.NewModelServiceClient(conn))
	unaryText := checkComplete(chat)
	checkStream(chat, unaryText)
	checkNotFound(chat)
	checkDeadline(sluicev1.NewChatServiceClient(slowConn))
	checkTraceparent(sluicev1.NewChatServiceClient(tracedConn), *traceparent)
	checkKeyed(keyedConn, *apiKey)
	checkCredentials(cred)
	fmt.Println("go client: ok: ListModels, Complete, StreamComplete, NOT_FOUND+ErrorInfo, deadline, traceparent, " +
		"api key: bearer accepted, missing+wrong UNAUTHENTICATED, PERMISSION_DENIED+MODEL_NOT_ALLOWED, ListModels scoped, " +
		"credentials: jwt accepted+expired UNAUTHENTICATED+other PERMISSION_DENIED, " +
		"client cert accepted+none UNAUTHENTICATED+foreign UNAUTHENTICATED, " +
		"signed accepted+replayed UNAUTHENTICATED+stale UNAUTHENTICATED")
}
