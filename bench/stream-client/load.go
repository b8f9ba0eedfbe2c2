package main

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"time"
)

// loadConfig: a closed loop of `concurrency` workers, each running one stream after another
// until `duration` is over; streams still running then are allowed to finish.
type loadConfig struct {
	mode          string
	url           string
	body          []byte
	headers       http.Header
	concurrency   int
	duration      time.Duration
	stagger       time.Duration
	streamTimeout time.Duration
	expectChunks  int
	conns         int
}

type loadReport struct {
	Mode         string   `json:"mode"`
	Streams      int      `json:"streams"`
	Errors       int      `json:"errors"`
	ErrorSamples []string `json:"errorSamples"`
	Chunks       int      `json:"chunks"`
	ElapsedS     float64  `json:"elapsedS"`
	// Request sent → first content delta received.
	TTFT summary `json:"ttftUs"`
	// Every stream's TTFT in µs: a run has only tens of streams, so the harness pools repeats for p99.
	TTFTRaw []int64 `json:"ttftRawUs"`
	// Time between consecutive content deltas of one stream.
	Gap summary `json:"gapUs"`
	// Fake upstream wrote the chunk → this client read it (shared CLOCK_MONOTONIC).
	Transit summary `json:"transitUs"`
}

type streamResult struct {
	ttft     int64
	gaps     []int64
	transits []int64
	chunks   int
	err      error
}

// oneStream runs a single streamed request and times every content delta.
func oneStream(ctx context.Context, client *http.Client, cfg *loadConfig) streamResult {
	var res streamResult
	ctx, cancel := context.WithTimeout(ctx, cfg.streamTimeout)
	defer cancel()
	req, err := newRequest(ctx, cfg.url, cfg.body, cfg.headers)
	if err != nil {
		res.err = err
		return res
	}
	start := monoNow()
	resp, err := client.Do(req)
	if err != nil {
		res.err = err
		return res
	}
	defer resp.Body.Close()
	last := int64(0)
	res.err = readStream(cfg.mode, resp, func(at int64, text string) {
		if res.chunks == 0 {
			res.ttft = at - start
		} else {
			res.gaps = append(res.gaps, at-last)
		}
		if stamp := parseStamp(text); stamp > 0 {
			res.transits = append(res.transits, at-stamp)
		}
		last = at
		res.chunks++
	})
	if res.err == nil && cfg.expectChunks > 0 && res.chunks != cfg.expectChunks {
		res.err = fmt.Errorf("got %d content chunks, want %d", res.chunks, cfg.expectChunks)
	}
	return res
}

func runLoad(cfg *loadConfig) loadReport {
	pool := clients(cfg.mode, cfg.conns)
	results := make(chan streamResult, 1024)
	begin := time.Now()
	deadline := begin.Add(cfg.duration)
	var wg sync.WaitGroup
	for w := 0; w < cfg.concurrency; w++ {
		wg.Add(1)
		go func(w int) {
			defer wg.Done()
			// Spread the first requests so the workers' chunk timers do not fire in lockstep.
			time.Sleep(cfg.stagger * time.Duration(w) / time.Duration(cfg.concurrency))
			client := pool[w%len(pool)]
			for time.Now().Before(deadline) {
				results <- oneStream(context.Background(), client, cfg)
			}
		}(w)
	}
	go func() { wg.Wait(); close(results) }()

	report := loadReport{Mode: cfg.mode, ErrorSamples: []string{}}
	var ttfts, gaps, transits []int64
	for res := range results {
		report.Streams++
		report.Chunks += res.chunks
		if res.err != nil {
			report.Errors++
			if len(report.ErrorSamples) < 5 {
				report.ErrorSamples = append(report.ErrorSamples, res.err.Error())
			}
			continue
		}
		ttfts = append(ttfts, res.ttft)
		gaps = append(gaps, res.gaps...)
		transits = append(transits, res.transits...)
	}
	report.ElapsedS = time.Since(begin).Seconds()
	report.TTFTRaw = make([]int64, len(ttfts))
	for i, ns := range ttfts {
		report.TTFTRaw[i] = ns / 1000
	}
	report.TTFT = summarize(ttfts)
	report.Gap = summarize(gaps)
	report.Transit = summarize(transits)
	return report
}
