package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"net"
	"net/http"
	"strconv"
	"time"

	"golang.org/x/net/http2"
)

// clients returns the HTTP clients streams are spread over. gRPC needs h2c (prior knowledge),
// which net/http does not speak in cleartext, so it gets x/net/http2 transports — one per
// wanted connection, since each transport keeps one connection per host.
func clients(mode string, conns int) []*http.Client {
	if mode != "grpc" {
		transport := &http.Transport{
			DisableCompression:  true,
			MaxIdleConnsPerHost: 100_000,
			IdleConnTimeout:     90 * time.Second,
			DialContext:         (&net.Dialer{Timeout: 5 * time.Second}).DialContext,
		}
		return []*http.Client{{Transport: transport}}
	}
	if conns < 1 {
		conns = 1
	}
	out := make([]*http.Client, conns)
	for i := range out {
		out[i] = &http.Client{Transport: &http2.Transport{
			AllowHTTP: true,
			DialTLSContext: func(ctx context.Context, network, addr string, _ *tls.Config) (net.Conn, error) {
				return (&net.Dialer{Timeout: 5 * time.Second}).DialContext(ctx, network, addr)
			},
			ReadIdleTimeout: 0,
		}}
	}
	return out
}

// newRequest builds the POST for one stream; the body is pre-built by the harness.
func newRequest(ctx context.Context, url string, body []byte, headers http.Header) (*http.Request, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	req.ContentLength = int64(len(body))
	for name, values := range headers {
		req.Header[name] = values
	}
	return req, nil
}

// parseStamp reads the `t<ns>` the fake upstream writes into each content chunk (0 if absent).
func parseStamp(text string) int64 {
	if len(text) < 2 || text[0] != 't' {
		return 0
	}
	end := 1
	for end < len(text) && text[end] >= '0' && text[end] <= '9' {
		end++
	}
	ns, err := strconv.ParseInt(text[1:end], 10, 64)
	if err != nil {
		return 0
	}
	return ns
}
