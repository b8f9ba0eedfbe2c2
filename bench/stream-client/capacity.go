package main

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// capacityConfig: open long, slowly paced streams in steps (e.g. 1k → 10k), holding them all
// open, and sample the proxy's resident memory at each plateau and after they are closed.
type capacityConfig struct {
	load        loadConfig
	steps       []int
	rampRate    int // new streams per second
	settle      time.Duration
	stepTimeout time.Duration
	rssPid      int
	after       []time.Duration
	fakeStats   string // the fake upstream's GET /stats URL ("" = not sampled)
}

type capacityStep struct {
	Target   int       `json:"target"`
	Open     int64     `json:"open"`
	Failed   int64     `json:"failed"`
	RssKB    int64     `json:"rssKb"`
	Fds      int       `json:"fds"`
	Fake     fakeStats `json:"fake"`
	ElapsedS float64   `json:"elapsedS"`
	// Chunk transit while this many streams were open (a latency-under-load indicator).
	Transit summary `json:"transitUs"`
}

type capacitySample struct {
	AfterS float64   `json:"afterS"`
	RssKB  int64     `json:"rssKb"`
	Fds    int       `json:"fds"`
	Fake   fakeStats `json:"fake"`
}

// fakeStats: what the fake upstream sees — streams it is still sending (a cancelled stream the
// proxy did not abort upstream stays here) and connections open to it. -1 when not sampled.
type fakeStats struct {
	ActiveStreams   int `json:"activeStreams"`
	OpenConnections int `json:"openConnections"`
}

func readFakeStats(url string) fakeStats {
	out := fakeStats{ActiveStreams: -1, OpenConnections: -1}
	if url == "" {
		return out
	}
	client := http.Client{Timeout: 2 * time.Second}
	resp, err := client.Get(url)
	if err != nil {
		return out
	}
	defer resp.Body.Close()
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return out
}

type capacityReport struct {
	Mode          string           `json:"mode"`
	BaselineRssKB int64            `json:"baselineRssKb"`
	BaselineFds   int              `json:"baselineFds"`
	Steps         []capacityStep   `json:"steps"`
	After         []capacitySample `json:"after"`
	EndedEarly    int64            `json:"endedEarly"`
	ErrorSamples  []string         `json:"errorSamples"`
}

// readRssKB reads VmRSS from /proc/PID/status (kB).
func readRssKB(pid int) int64 {
	data, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		return -1
	}
	for _, line := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(line, "VmRSS:") {
			fields := strings.Fields(line)
			if len(fields) >= 2 {
				kb, _ := strconv.ParseInt(fields[1], 10, 64)
				return kb
			}
		}
	}
	return -1
}

func countFds(pid int) int {
	entries, err := os.ReadDir("/proc/" + strconv.Itoa(pid) + "/fd")
	if err != nil {
		return -1
	}
	return len(entries)
}

// medianRssKB takes three samples 300 ms apart: one sample can land mid-GC.
func medianRssKB(pid int) int64 {
	samples := make([]int64, 3)
	for i := range samples {
		if i > 0 {
			time.Sleep(300 * time.Millisecond)
		}
		samples[i] = readRssKB(pid)
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	return samples[1]
}

func runCapacity(cfg *capacityConfig) capacityReport {
	report := capacityReport{Mode: cfg.load.mode, ErrorSamples: []string{}}
	report.BaselineRssKB = medianRssKB(cfg.rssPid)
	report.BaselineFds = countFds(cfg.rssPid)

	pool := clients(cfg.load.mode, cfg.load.conns)
	ctx, cancelAll := context.WithCancel(context.Background())
	defer cancelAll()
	var opened, failed, endedEarly atomic.Int64
	var mu sync.Mutex
	var transits []int64
	recordError := func(err error) {
		mu.Lock()
		if len(report.ErrorSamples) < 5 {
			report.ErrorSamples = append(report.ErrorSamples, err.Error())
		}
		mu.Unlock()
	}

	var wg sync.WaitGroup
	hold := func(i int) {
		defer wg.Done()
		req, err := newRequest(ctx, cfg.load.url, cfg.load.body, cfg.load.headers)
		if err != nil {
			failed.Add(1)
			recordError(err)
			return
		}
		resp, err := pool[i%len(pool)].Do(req)
		if err != nil {
			if ctx.Err() == nil {
				failed.Add(1)
				recordError(err)
			}
			return
		}
		defer resp.Body.Close()
		first := true
		err = readStream(cfg.load.mode, resp, func(at int64, text string) {
			if first {
				first = false
				opened.Add(1)
			}
			if stamp := parseStamp(text); stamp > 0 {
				mu.Lock()
				transits = append(transits, at-stamp)
				mu.Unlock()
			}
		})
		switch {
		case ctx.Err() != nil: // closed by us at the end: the expected way out
		case err != nil:
			failed.Add(1)
			recordError(err)
		default:
			endedEarly.Add(1)
			recordError(errors.New("stream ended before the run did (raise the fake's chunk count)"))
		}
	}

	begin := time.Now()
	launched := 0
	// Launch in 10 ms batches: time.Sleep cannot pace single streams at 1000+/s.
	batch := cfg.rampRate / 100
	if batch < 1 {
		batch = 1
	}
	for _, target := range cfg.steps {
		for launched < target {
			for k := 0; k < batch && launched < target; k++ {
				wg.Add(1)
				go hold(launched)
				launched++
			}
			time.Sleep(10 * time.Millisecond)
		}
		// Wait (bounded) until every launched stream has produced its first chunk or failed.
		waitUntil := time.Now().Add(cfg.stepTimeout)
		for opened.Load()+failed.Load() < int64(launched) && time.Now().Before(waitUntil) {
			time.Sleep(50 * time.Millisecond)
		}
		mu.Lock()
		transits = transits[:0]
		mu.Unlock()
		time.Sleep(cfg.settle)
		mu.Lock()
		stepTransit := summarize(append([]int64(nil), transits...))
		mu.Unlock()
		report.Steps = append(report.Steps, capacityStep{
			Target:   target,
			Open:     opened.Load() - endedEarly.Load(),
			Failed:   failed.Load(),
			RssKB:    medianRssKB(cfg.rssPid),
			Fds:      countFds(cfg.rssPid),
			Fake:     readFakeStats(cfg.fakeStats),
			ElapsedS: time.Since(begin).Seconds(),
			Transit:  stepTransit,
		})
	}

	// Close every stream at once, as a fleet of clients going away would.
	closedAt := time.Now()
	cancelAll()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(15 * time.Second):
	}
	for _, wait := range cfg.after {
		if d := time.Until(closedAt.Add(wait)); d > 0 {
			time.Sleep(d)
		}
		report.After = append(report.After, capacitySample{
			AfterS: time.Since(closedAt).Seconds(),
			RssKB:  medianRssKB(cfg.rssPid),
			Fds:    countFds(cfg.rssPid),
			Fake:   readFakeStats(cfg.fakeStats),
		})
	}
	report.EndedEarly = endedEarly.Load()
	return report
}
