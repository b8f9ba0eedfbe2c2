// A Sluice client in Go (grpc-go): a unary Complete, a StreamComplete printing deltas as
// they arrive, google.rpc.ErrorInfo and RetryInfo read from errors, a deadline, and a
// cancelled stream. It calls the gateway at SLUICE_URL (default http://127.0.0.1:8080) with
// the API key in SLUICE_API_KEY (if set). See README.md for the generate / build / run commands.
package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net/url"
	"os"
	"strings"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	sluicev1 "github.com/sluice-gateway/sluice/gen/go/sluice/v1"
)

// bearer sends `authorization: Bearer KEY` with every call.
type bearer struct {
	key    string
	secure bool
}

func (b bearer) GetRequestMetadata(context.Context, ...string) (map[string]string, error) {
	return map[string]string{"authorization": "Bearer " + b.key}, nil
}

func (b bearer) RequireTransportSecurity() bool { return b.secure }

func dial() *grpc.ClientConn {
	target, err := url.Parse(getenv("SLUICE_URL", "http://127.0.0.1:8080"))
	if err != nil {
		fail("SLUICE_URL: %v", err)
	}
	secure := target.Scheme == "https"
	opts := []grpc.DialOption{grpc.WithInsecure()}
	if secure {
		opts = []grpc.DialOption{grpc.WithTransportCredentials(credentials.NewTLS(&tls.Config{}))}
	}
	if key := os.Getenv("SLUICE_API_KEY"); key != "" {
		opts = append(opts, grpc.WithPerRPCCredentials(bearer{key: key, secure: secure}))
	}
	conn, err := grpc.Dial(target.Host, opts...)
	if err != nil {
		fail("dial %s: %v", target.Host, err)
	}
	return conn
}

func request(model, text string) *sluicev1.CompleteRequest {
	return &sluicev1.CompleteRequest{
		Model: model,
		Messages: []*sluicev1.Message{{
			Role:    sluicev1.Role_ROLE_USER,
			Content: []*sluicev1.ContentPart{{Part: &sluicev1.ContentPart_Text{Text: text}}},
		}},
	}
}

func main() {
	conn := dial()
	defer conn.Close()
	chat := sluicev1.NewChatServiceClient(conn)

	// Unary. Every call gets a deadline.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	res, err := chat.Complete(ctx, request("demo", "Hello from Go"))
	if err != nil {
		fail("Complete: %v", err)
	}
	var answer strings.Builder
	for _, part := range res.GetMessage().GetContent() {
		answer.WriteString(part.GetText())
	}
	fmt.Printf("complete: %s\n", answer.String())

	// Server streaming: print each delta as it arrives.
	stream, err := chat.StreamComplete(ctx, request("demo", "Hello from Go"))
	if err != nil {
		fail("StreamComplete: %v", err)
	}
	fmt.Print("stream: ")
	for {
		event, err := stream.Recv()
		if err == io.EOF {
			break
		}
		if err != nil {
			fail("StreamComplete: %v", err)
		}
		switch e := event.GetEvent().(type) {
		case *sluicev1.StreamCompleteResponse_Delta:
			fmt.Print(e.Delta.GetText())
		case *sluicev1.StreamCompleteResponse_Done:
			fmt.Printf("\nstream done: %s\n", e.Done.GetFinishReason())
		}
	}

	// An unknown model: NOT_FOUND, with google.rpc.ErrorInfo among the status details.
	_, err = chat.Complete(ctx, request("no-such-model", "Hello from Go"))
	st := status.Convert(err)
	for _, detail := range st.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			fmt.Printf("not found: %s %s (domain %s)\n", codeName(st.Code()), info.GetReason(), info.GetDomain())
		}
	}

	// Model "limited" allows one request a minute: a second call is RESOURCE_EXHAUSTED,
	// and RetryInfo says when to try again.
	for i := 0; i < 2; i++ {
		_, err = chat.Complete(ctx, request("limited", "Hello from Go"))
		if status.Code(err) == codes.ResourceExhausted {
			st := status.Convert(err)
			var reason string
			var delay time.Duration
			for _, detail := range st.Details() {
				switch d := detail.(type) {
				case *errdetails.ErrorInfo:
					reason = d.GetReason()
				case *errdetails.RetryInfo:
					delay = d.GetRetryDelay().AsDuration()
				}
			}
			fmt.Printf("rate limited: %s %s, retry in %d s\n", codeName(st.Code()), reason, int((delay+time.Second-1)/time.Second))
			break
		} else if err != nil {
			fail("Complete(limited): %v", err)
		}
	}

	// A deadline shorter than the answer takes to stream: DEADLINE_EXCEEDED.
	short, cancelShort := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancelShort()
	stream, err = chat.StreamComplete(short, request("demo", "Hello from Go"))
	if err == nil {
		for err == nil {
			_, err = stream.Recv()
		}
	}
	fmt.Printf("deadline: %s after 200 ms\n", codeName(status.Code(err)))

	// Cancel: stop reading after the first delta; the gateway stops the call.
	cancellable, cancelStream := context.WithCancel(context.Background())
	stream, err = chat.StreamComplete(cancellable, request("demo", "Hello from Go"))
	for err == nil {
		var event *sluicev1.StreamCompleteResponse
		event, err = stream.Recv()
		if event.GetDelta() != nil {
			cancelStream()
		}
	}
	cancelStream()
	fmt.Printf("cancel: %s after the first delta\n", codeName(status.Code(err)))
}

// codeName spells a gRPC code as the protocol does: codes.NotFound is NOT_FOUND.
func codeName(code codes.Code) string {
	if code == codes.Canceled {
		return "CANCELLED" // Go spells it Canceled
	}
	var b strings.Builder
	for i, r := range code.String() {
		if i > 0 && r >= 'A' && r <= 'Z' {
			b.WriteByte('_')
		}
		b.WriteRune(r)
	}
	return strings.ToUpper(b.String())
}

func getenv(name, fallback string) string {
	if value := os.Getenv(name); value != "" {
		return value
	}
	return fallback
}

func fail(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "go example: "+format+"\n", args...)
	os.Exit(1)
}
