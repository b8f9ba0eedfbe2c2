// stream-client: the benchmark's streaming load generator. Written in Go rather than Node so
// its own garbage collector and event loop do not add noise at the tens-of-µs scale measured.
//
// Modes (-mode): sse (OpenAI chat.completion.chunk events), connect (Connect streaming,
// application/connect+json), grpc (h2c, protobuf). One of three runs:
//
//	-once       one request, print status and body size (used to verify a target before h2load)
//	(default)   closed-loop streaming load: -c workers for -duration; TTFT, gap, transit
//	-capacity   ramp to -steps open streams, sample -rss-pid's VmRSS at each step and after close
//
// Output: one JSON document on stdout.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"
	"time"
)

type headerFlags http.Header

func (h headerFlags) String() string { return "" }
func (h headerFlags) Set(value string) error {
	name, val, ok := strings.Cut(value, ":")
	if !ok {
		return fmt.Errorf("header %q: want name:value", value)
	}
	http.Header(h).Add(strings.TrimSpace(name), strings.TrimSpace(val))
	return nil
}

func parseInts(list string) ([]int, error) {
	var out []int
	for _, part := range strings.Split(list, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		out = append(out, n)
	}
	return out, nil
}

func parseDurations(list string) ([]time.Duration, error) {
	var out []time.Duration
	for _, part := range strings.Split(list, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, nil
}

type onceReport struct {
	HTTPStatus  int    `json:"httpStatus"`
	GrpcStatus  string `json:"grpcStatus"`
	GrpcMessage string `json:"grpcMessage"`
	BodyBytes   int    `json:"bodyBytes"`
	BodyHead    string `json:"bodyHead"`
	Error       string `json:"error,omitempty"`
}

// runOnce sends one request and reports what came back, trailers included.
func runOnce(cfg *loadConfig) onceReport {
	var out onceReport
	ctx, cancel := context.WithTimeout(context.Background(), cfg.streamTimeout)
	defer cancel()
	req, err := newRequest(ctx, cfg.url, cfg.body, cfg.headers)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	resp, err := clients(cfg.mode, 1)[0].Do(req)
	if err != nil {
		out.Error = err.Error()
		return out
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		out.Error = err.Error()
	}
	out.HTTPStatus = resp.StatusCode
	out.BodyBytes = len(body)
	if len(body) > 300 {
		body = body[:300]
	}
	out.BodyHead = string(body)
	out.GrpcStatus = resp.Trailer.Get("Grpc-Status")
	out.GrpcMessage = resp.Trailer.Get("Grpc-Message")
	if out.GrpcStatus == "" {
		out.GrpcStatus = resp.Header.Get("Grpc-Status")
		out.GrpcMessage = resp.Header.Get("Grpc-Message")
	}
	return out
}

func main() {
	headers := headerFlags{}
	cfg := loadConfig{headers: http.Header(headers)}
	var bodyFile, steps, after string
	var once, capacity bool
	capCfg := capacityConfig{}
	flag.StringVar(&cfg.mode, "mode", "sse", "sse | connect | grpc")
	flag.StringVar(&cfg.url, "url", "", "target URL")
	flag.StringVar(&bodyFile, "body", "", "file holding the request body, sent as is")
	flag.Var(headers, "H", "request header name:value (repeatable)")
	flag.IntVar(&cfg.concurrency, "c", 8, "concurrent streams (load mode)")
	flag.DurationVar(&cfg.duration, "duration", 5*time.Second, "time to keep starting streams (load mode)")
	flag.DurationVar(&cfg.stagger, "stagger", 20*time.Millisecond, "spread the workers' first requests over this long")
	flag.DurationVar(&cfg.streamTimeout, "stream-timeout", 30*time.Second, "give up on one stream after this long")
	flag.IntVar(&cfg.expectChunks, "expect-chunks", 0, "content chunks each stream must carry (0: any)")
	flag.IntVar(&cfg.conns, "conns", 1, "h2c connections to spread streams over (grpc mode)")
	flag.BoolVar(&once, "once", false, "send one request and report it")
	flag.BoolVar(&capacity, "capacity", false, "capacity ramp instead of load")
	flag.StringVar(&steps, "steps", "1000,2000,5000,10000", "open-stream counts to hold (capacity)")
	flag.IntVar(&capCfg.rampRate, "ramp-rate", 1000, "new streams per second (capacity)")
	flag.DurationVar(&capCfg.settle, "settle", 2*time.Second, "hold each step this long before sampling (capacity)")
	flag.DurationVar(&capCfg.stepTimeout, "step-timeout", 30*time.Second, "longest wait for a step's streams to open")
	flag.IntVar(&capCfg.rssPid, "rss-pid", 0, "process whose VmRSS is sampled (capacity)")
	flag.StringVar(&after, "after", "2s,10s", "RSS samples this long after all streams closed (capacity)")
	flag.StringVar(&capCfg.fakeStats, "fake-stats", "", "the fake upstream's /stats URL, sampled with RSS (capacity)")
	flag.Parse()

	fail := func(err error) {
		fmt.Fprintln(os.Stderr, "stream-client:", err)
		os.Exit(2)
	}
	if cfg.url == "" || bodyFile == "" {
		fail(fmt.Errorf("-url and -body are required"))
	}
	body, err := os.ReadFile(bodyFile)
	if err != nil {
		fail(err)
	}
	cfg.body = body

	var result any
	switch {
	case once:
		result = runOnce(&cfg)
	case capacity:
		if capCfg.steps, err = parseInts(steps); err != nil {
			fail(err)
		}
		if capCfg.after, err = parseDurations(after); err != nil {
			fail(err)
		}
		capCfg.load = cfg
		result = runCapacity(&capCfg)
	default:
		result = runLoad(&cfg)
	}
	if err := json.NewEncoder(os.Stdout).Encode(result); err != nil {
		fail(err)
	}
}
