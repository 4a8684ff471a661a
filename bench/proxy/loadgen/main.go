// Command loadgen is an open-loop HTTP/1.1 load generator for latency at a fixed rate (wrk2
// is not packaged in Debian). Requests are scheduled at exact intervals and latency is
// measured from the scheduled time, so a stalled proxy is charged for every request it
// delayed (no coordinated omission). Keep-alive connections, one request in flight per
// connection, any idle connection takes the next due request; responses are framed by
// Content-Length. It is Go rather than Node so that the generator costs the shared core
// a few percent instead of half of it: a Node generator's own pauses showed up as tens of
// milliseconds of p99 against an idle nginx.
//
// With -h2 it speaks HTTP/2 over TLS instead (ALPN h2, the certificate not checked), through Go's
// net/http, one connection per worker as above, one stream in flight on each: the HTTP/2
// benchmark's fixed rate (bench/proxy/h2.ts).
//
// Usage: loadgen -port P -host H -rate R -seconds S [-connections C] [-warmup W] [-windows MS] [-h2]
// Prints one JSON line: {sent, completed, errors, rate, p50Ms, p90Ms, p99Ms, p999Ms, maxMs,
// warmupP99Ms}. Requests scheduled in the first W seconds are sent and checked like the others
// but left out of the percentiles (wrk2 likewise keeps its calibration period out of them):
// their p99 is reported alone as warmupP99Ms, so a slow start stays visible. With -windows,
// stderr also gets one line per window of MS milliseconds of scheduled time (warm-up included):
// its start, requests, p50, p99 and max, to see when in a run the slow requests were due.
package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

type result struct {
	Sent      int     `json:"sent"`
	Completed int     `json:"completed"`
	Errors    int64   `json:"errors"`
	Rate      float64 `json:"rate"`
	P50Ms     float64 `json:"p50Ms"`
	P90Ms     float64 `json:"p90Ms"`
	P99Ms     float64 `json:"p99Ms"`
	P999Ms    float64 `json:"p999Ms"`
	MaxMs     float64 `json:"maxMs"`
	WarmupP99 float64 `json:"warmupP99Ms"`
}

var (
	headEnd       = []byte("\r\n\r\n")
	contentLength = []byte("\r\ncontent-length:")
)

// conn is one keep-alive connection; buf keeps bytes read past the current response.
type conn struct {
	addr    string
	c       net.Conn
	buf     []byte
	pending []byte
}

func (k *conn) dial() error {
	c, err := net.Dial("tcp", k.addr)
	if err != nil {
		return err
	}
	k.c, k.pending = c, k.pending[:0]
	return nil
}

// exchange sends one request and reads one whole response, reporting whether it was a 2xx.
func (k *conn) exchange(request []byte) (bool, error) {
	if k.c == nil {
		if err := k.dial(); err != nil {
			return false, err
		}
	}
	if _, err := k.c.Write(request); err != nil {
		return false, err
	}
	need := -1
	ok := false
	for {
		if need < 0 {
			if end := bytes.Index(k.pending, headEnd); end >= 0 {
				head := k.pending[:end+2]
				ok = bytes.HasPrefix(head, []byte("HTTP/1.1 2"))
				length, err := bodyLength(head)
				if err != nil {
					return false, err
				}
				need = end + 4 + length
			}
		}
		if need >= 0 && len(k.pending) >= need {
			k.pending = k.pending[:copy(k.pending, k.pending[need:])]
			return ok, nil
		}
		n, err := k.c.Read(k.buf)
		if err != nil {
			return false, err
		}
		k.pending = append(k.pending, k.buf[:n]...)
	}
}

func (k *conn) close() {
	if k.c != nil {
		k.c.Close()
		k.c = nil
	}
}

// exchanger is one connection of either protocol.
type exchanger interface {
	exchange(request []byte) (bool, error)
	close()
}

// h2conn is one HTTP/2 connection: a client of its own, so that workers do not share one.
type h2conn struct {
	client    *http.Client
	transport *http.Transport
	url       string
	host      string
}

func newH2conn(port int, host string) *h2conn {
	t := &http.Transport{
		TLSClientConfig:   &tls.Config{InsecureSkipVerify: true, ServerName: host, NextProtos: []string{"h2"}},
		ForceAttemptHTTP2: true, MaxConnsPerHost: 1, MaxIdleConnsPerHost: 1,
	}
	return &h2conn{client: &http.Client{Transport: t}, transport: t, url: fmt.Sprintf("https://127.0.0.1:%d/", port), host: host}
}

func (k *h2conn) exchange([]byte) (bool, error) {
	req, err := http.NewRequest("GET", k.url, nil)
	if err != nil {
		return false, err
	}
	req.Host = k.host
	resp, err := k.client.Do(req)
	if err != nil {
		return false, err
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if err != nil {
		return false, err
	}
	return resp.StatusCode/100 == 2 && resp.ProtoMajor == 2, nil
}

func (k *h2conn) close() { k.transport.CloseIdleConnections() }

func bodyLength(head []byte) (int, error) {
	lower := bytes.ToLower(head)
	at := bytes.Index(lower, contentLength)
	if at < 0 {
		return 0, fmt.Errorf("response without Content-Length: %q", head)
	}
	rest := lower[at+len(contentLength):]
	rest = rest[:bytes.IndexByte(rest, '\r')]
	return strconv.Atoi(string(bytes.TrimSpace(rest)))
}

func quantile(sorted []time.Duration, p float64) float64 {
	if len(sorted) == 0 {
		return math.NaN()
	}
	i := int(p * float64(len(sorted)))
	if i >= len(sorted) {
		i = len(sorted) - 1
	}
	return math.Round(float64(sorted[i])/1e4) / 100
}

func sorted(lists [][]time.Duration) []time.Duration {
	var all []time.Duration
	for _, l := range lists {
		all = append(all, l...)
	}
	sort.Slice(all, func(a, b int) bool { return all[a] < all[b] })
	return all
}

func main() {
	port := flag.Int("port", 0, "proxy port on 127.0.0.1")
	host := flag.String("host", "", "Host header")
	rate := flag.Float64("rate", 0, "requests per second")
	seconds := flag.Float64("seconds", 0, "duration (at most 120)")
	connections := flag.Int("connections", 50, "keep-alive connections")
	warmup := flag.Float64("warmup", 0, "seconds at the start left out of the percentiles")
	windowMs := flag.Int("windows", 0, "also print latency per window of this many milliseconds to stderr")
	h2 := flag.Bool("h2", false, "HTTP/2 over TLS (ALPN h2, certificate not checked) instead of HTTP/1.1")
	flag.Parse()
	if *port <= 0 || *host == "" || *rate <= 0 || *seconds <= 0 || *seconds > 120 || *connections <= 0 || *warmup < 0 || *warmup >= *seconds || *windowMs < 0 {
		flag.Usage()
		os.Exit(2)
	}
	request := []byte("GET / HTTP/1.1\r\nHost: " + *host + "\r\n\r\n")
	total := int(*rate * *seconds)
	interval := float64(time.Second) / *rate
	due := make(chan time.Time, total)
	var errors atomic.Int64
	latencies := make([][]time.Duration, *connections)
	warmupLatencies := make([][]time.Duration, *connections)
	// Per connection, each request's scheduled time and latency, kept only for -windows.
	type timed struct {
		at      time.Time
		latency time.Duration
	}
	windowed := make([][]timed, *connections)
	// Set before the first request is due; workers read it only after receiving one.
	var measureFrom time.Time
	var wg sync.WaitGroup
	for i := range latencies {
		var k exchanger
		if *h2 {
			k = newH2conn(*port, *host)
		} else {
			c := &conn{addr: fmt.Sprintf("127.0.0.1:%d", *port), buf: make([]byte, 64<<10)}
			if err := c.dial(); err != nil {
				fmt.Fprintln(os.Stderr, "loadgen:", err)
				os.Exit(1)
			}
			k = c
		}
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			for at := range due {
				ok, err := k.exchange(request)
				if err != nil {
					errors.Add(1)
					k.close()
					continue
				}
				if !ok {
					errors.Add(1)
				}
				latency := time.Since(at)
				if *windowMs > 0 {
					windowed[i] = append(windowed[i], timed{at, latency})
				}
				if at.Before(measureFrom) {
					warmupLatencies[i] = append(warmupLatencies[i], latency)
				} else {
					latencies[i] = append(latencies[i], latency)
				}
			}
		}(i)
	}

	start := time.Now().Add(200 * time.Millisecond)
	measureFrom = start.Add(time.Duration(*warmup * float64(time.Second)))
	deadline := start.Add(time.Duration(*seconds*float64(time.Second)) + 5*time.Second)
	sent := 0
	for sent < total {
		now := time.Now()
		for sent < total {
			at := start.Add(time.Duration(float64(sent) * interval))
			if at.After(now) {
				time.Sleep(at.Sub(now))
				break
			}
			due <- at
			sent++
		}
	}
	close(due)
	finished := make(chan struct{})
	go func() { wg.Wait(); close(finished) }()
	select {
	case <-finished:
	case <-time.After(time.Until(deadline)):
	}

	all := sorted(latencies)
	early := sorted(warmupLatencies)
	r := result{Sent: sent, Completed: len(all) + len(early), Errors: errors.Load(), Rate: *rate,
		P50Ms: quantile(all, 0.5), P90Ms: quantile(all, 0.9), P99Ms: quantile(all, 0.99), P999Ms: quantile(all, 0.999)}
	if len(early) > 0 {
		r.WarmupP99 = quantile(early, 0.99)
	}
	if len(all) > 0 {
		r.MaxMs = quantile(all, 1)
	}
	if *windowMs > 0 {
		width := time.Duration(*windowMs) * time.Millisecond
		byWindow := map[int][]time.Duration{}
		last := 0
		for _, list := range windowed {
			for _, t := range list {
				w := int(t.at.Sub(start) / width)
				byWindow[w] = append(byWindow[w], t.latency)
				last = max(last, w)
			}
		}
		for w := 0; w <= last; w++ {
			l := sorted([][]time.Duration{byWindow[w]})
			fmt.Fprintf(os.Stderr, "window %6d ms: %6d requests, p50 %7.2f ms, p99 %7.2f ms, max %7.2f ms\n",
				w*(*windowMs), len(l), quantile(l, 0.5), quantile(l, 0.99), quantile(l, 1))
		}
	}
	out, _ := json.Marshal(r)
	fmt.Println(string(out))
}
