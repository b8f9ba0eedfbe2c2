package main

import "sort"

// summary is a latency distribution in microseconds, as the harness reports it.
type summary struct {
	N   int     `json:"n"`
	P50 float64 `json:"p50"`
	P90 float64 `json:"p90"`
	P99 float64 `json:"p99"`
	Max float64 `json:"max"`
}

// summarize sorts samples (nanoseconds) in place and returns nearest-rank percentiles in µs.
func summarize(samples []int64) summary {
	if len(samples) == 0 {
		return summary{}
	}
	sort.Slice(samples, func(i, j int) bool { return samples[i] < samples[j] })
	at := func(p float64) float64 {
		i := int(p*float64(len(samples))+0.999999) - 1
		if i < 0 {
			i = 0
		}
		if i >= len(samples) {
			i = len(samples) - 1
		}
		return float64(samples[i]) / 1000
	}
	return summary{N: len(samples), P50: at(0.50), P90: at(0.90), P99: at(0.99), Max: float64(samples[len(samples)-1]) / 1000}
}
