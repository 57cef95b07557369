// h3load: a small HTTP/3 load generator for the CovetPy benchmark matrix (python -m bench), on quic-go's http3.
//
//	h3load -url https://127.0.0.1:8443/plaintext -ca ca.pem -c 64 -m 100 -warmup 1s -d 3s
//	h3load -url https://127.0.0.1:8443/echo -ca ca.pem -method POST -body-size 1048576 -expect-echo -c 8 -m 4 -d 3s
//	h3load -url ... -n 1000                (a fixed count of requests instead of -d)
//	h3load -url ... -check -n 4            (correctness gate: exit 0 when right, 1 when not)
//
// Load: -c QUIC connections (each on a UDP socket of its own, so each is a client of its own to the server),
// each with -m request streams in flight (closed loop: every stream's worker sends its next request when the
// previous response has been read whole). Every connection is made (TLS 1.3 verified against the CA of -ca,
// ALPN h3) before the clock starts, then -warmup, then the timed window of -d (or exactly -n requests).
// A response counts when its status is 2xx, it came over HTTP/3, its body was read whole and matches what
// -expect-body / -expect-echo / -expect-type ask for; anything else is an error of its kind.
//
// Output: human-readable lines, "H3LOAD_MARK start" / "H3LOAD_MARK end" around the timed window (so the
// caller can sample the server's CPU exactly over it; handshakes and warm-up are outside it), and one line
// "H3LOAD_RESULT {json}" at the end. Exit status: 0 = ran (errors are counted in the JSON), 1 = the -check
// failed, 2 = could not run (usage, the CA, no connection could be made).
package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"mime"
	"net"
	"net/http"
	"net/url"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

const version = "1"

const (
	markStart    = "H3LOAD_MARK start"
	markEnd      = "H3LOAD_MARK end"
	resultPrefix = "H3LOAD_RESULT "
)

// phases of a load run
const (
	phaseWarm int32 = iota
	phaseMeasure
	phaseStop
)

type config struct {
	url              string
	ca               string
	conns            int
	streams          int
	method           string
	bodySize         int
	expectBody       string
	hasExpectBody    bool
	expectEcho       bool
	expectType       string
	warmup           time.Duration
	duration         time.Duration
	n                int
	check            bool
	timeout          time.Duration
	handshakeTimeout time.Duration
}

type errCounts struct {
	Connect int64 `json:"connect"` // a QUIC handshake (first or again) that failed
	Request int64 `json:"request"` // the request failed: stream or connection error, timeout
	Status  int64 `json:"status"`  // not 2xx
	Proto   int64 `json:"proto"`   // the response did not come over HTTP/3
	Body    int64 `json:"body"`    // the body could not be read whole, or is not the expected one
	Header  int64 `json:"header"`  // Content-Type not the expected one
}

func (e *errCounts) total() int64 {
	return e.Connect + e.Request + e.Status + e.Proto + e.Body + e.Header
}

func (e *errCounts) add(o *errCounts) {
	e.Connect += o.Connect
	e.Request += o.Request
	e.Status += o.Status
	e.Proto += o.Proto
	e.Body += o.Body
	e.Header += o.Header
}

type tlsInfo struct {
	Version    string `json:"version"`
	Cipher     string `json:"cipher"`
	ALPN       string `json:"alpn"`
	ServerName string `json:"server_name,omitempty"`
}

type result struct {
	Tool           string             `json:"tool"`
	Version        string             `json:"version"`
	URL            string             `json:"url"`
	Method         string             `json:"method"`
	Check          bool               `json:"check"`
	OK             bool               `json:"ok"`
	Reason         string             `json:"reason,omitempty"`
	Connections    int                `json:"connections"`
	Streams        int                `json:"streams"`
	BodySize       int                `json:"body_size"`
	WarmupS        float64            `json:"warmup_s"`
	DurationS      float64            `json:"duration_s"`
	Requests       int64              `json:"requests"` // correct responses completed in the timed window
	RequestsPerSec float64            `json:"requests_per_sec"`
	BytesRead      int64              `json:"bytes_read"` // response body bytes of those responses
	BytesSent      int64              `json:"bytes_sent"` // request body bytes of those requests
	BytesPerSec    float64            `json:"bytes_per_sec"`
	LatencyMs      map[string]float64 `json:"latency_ms"`
	Status         map[string]int64   `json:"status"` // status classes of the responses in the window
	Protocol       string             `json:"protocol,omitempty"`
	Dials          int64              `json:"dials"` // QUIC connections made (-c at the start, more after a loss)
	TLS            *tlsInfo           `json:"tls,omitempty"`
	Errors         errCounts          `json:"errors"`
	ErrorsTotal    int64              `json:"errors_total"`
	FirstError     string             `json:"first_error,omitempty"`
}

var (
	firstErrMu sync.Mutex
	firstErr   string // the first error seen, for the result's first_error
)

func noteErr(format string, a ...any) {
	firstErrMu.Lock()
	if firstErr == "" {
		firstErr = fmt.Sprintf(format, a...)
	}
	firstErrMu.Unlock()
}

func takeFirstErr() string {
	firstErrMu.Lock()
	defer firstErrMu.Unlock()
	return firstErr
}

func resetFirstErr() {
	firstErrMu.Lock()
	firstErr = ""
	firstErrMu.Unlock()
}

// payload returns the request body: size pseudo-random bytes, the same on every run.
func payload(size int) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{'c', 'o', 'v', 'e', 't', 'h', '3', 'l', 'o', 'a', 'd'}))
	b := make([]byte, size)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// percentilesMs: nearest-rank percentiles (as wrk/HdrHistogram) of latencies in ns, in ms.
func percentilesMs(lat []int64) map[string]float64 {
	out := map[string]float64{}
	if len(lat) == 0 {
		return out
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	for _, p := range []struct {
		k string
		v float64
	}{{"50", 50}, {"90", 90}, {"99", 99}, {"99.9", 99.9}} {
		k := int(math.Ceil(p.v*float64(len(lat))/100.0 - 1e-9))
		k = max(1, min(k, len(lat)))
		out[p.k] = float64(lat[k-1]) / 1e6
	}
	out["max"] = float64(lat[len(lat)-1]) / 1e6
	return out
}

func statusClass(code int) string {
	if code < 100 || code > 599 {
		return "other"
	}
	return fmt.Sprintf("%dxx", code/100)
}

// ---- connections ---------------------------------------------------------------------------------------

// client: what every connection shares.
type client struct {
	cfg     *config
	target  *url.URL
	raddr   *net.UDPAddr
	tlsConf *tls.Config
	quicCfg *quic.Config
	tr      *http3.Transport
	body    []byte
	dials   atomic.Int64
}

// slot: one of the -c connections; redialled (once per loss) when the server closes it.
type slot struct {
	mu   sync.Mutex
	pc   net.PacketConn
	conn *quic.Conn
	cc   *http3.ClientConn
	gone bool // a redial failed: the slot's workers stop
}

func newClient(cfg *config) (*client, error) {
	u, err := url.Parse(cfg.url)
	if err != nil || u.Scheme != "https" || u.Port() == "" {
		return nil, fmt.Errorf("-url %q: want https://host:port/path", cfg.url)
	}
	pem, err := os.ReadFile(cfg.ca)
	if err != nil {
		return nil, fmt.Errorf("reading -ca: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("-ca %s holds no PEM certificate", cfg.ca)
	}
	raddr, err := net.ResolveUDPAddr("udp", u.Host)
	if err != nil {
		return nil, fmt.Errorf("resolving %s: %v", u.Host, err)
	}
	c := &client{
		cfg:    cfg,
		target: u,
		raddr:  raddr,
		tlsConf: &tls.Config{RootCAs: roots, ServerName: u.Hostname(), NextProtos: []string{http3.NextProtoH3},
			MinVersion: tls.VersionTLS13},
		quicCfg: &quic.Config{HandshakeIdleTimeout: cfg.handshakeTimeout, MaxIdleTimeout: 30 * time.Second,
			KeepAlivePeriod: 10 * time.Second},
		tr: &http3.Transport{DisableCompression: true},
	}
	if cfg.bodySize > 0 {
		c.body = payload(cfg.bodySize)
	}
	return c, nil
}

// dial makes one QUIC connection on a UDP socket of its own.
func (c *client) dial() (net.PacketConn, *quic.Conn, *http3.ClientConn, error) {
	c.dials.Add(1)
	laddr := &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)}
	if c.raddr.IP.To4() == nil {
		laddr = &net.UDPAddr{IP: net.IPv6loopback}
	}
	pc, err := net.ListenUDP("udp", laddr)
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.handshakeTimeout+time.Second)
	defer cancel()
	conn, err := quic.Dial(ctx, pc, c.raddr, c.tlsConf, c.quicCfg)
	if err != nil {
		pc.Close()
		return nil, nil, nil, err
	}
	return pc, conn, c.tr.NewClientConn(conn), nil
}

func (s *slot) current() (*quic.Conn, *http3.ClientConn, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.conn, s.cc, s.gone
}

// redial replaces the slot's connection when it is still old (the first worker to see it lost does it).
func (c *client) redial(s *slot, old *quic.Conn, errs *errCounts) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != old || s.gone {
		return
	}
	s.conn.CloseWithError(0, "")
	s.pc.Close()
	pc, conn, cc, err := c.dial()
	if err != nil {
		errs.Connect++
		noteErr("reconnecting: %v", err)
		s.gone = true
		return
	}
	s.pc, s.conn, s.cc = pc, conn, cc
}

func (s *slot) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.conn != nil {
		s.conn.CloseWithError(0, "")
	}
	if s.pc != nil {
		s.pc.Close()
	}
}

// connectAll makes the -c connections, 16 handshakes at a time.
func (c *client) connectAll(n int) ([]*slot, error) {
	slots := make([]*slot, n)
	errs := make([]error, n)
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for i := range slots {
		wg.Add(1)
		go func(i int) {
			defer wg.Done()
			sem <- struct{}{}
			defer func() { <-sem }()
			pc, conn, cc, err := c.dial()
			errs[i] = err
			slots[i] = &slot{pc: pc, conn: conn, cc: cc}
		}(i)
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			for _, s := range slots {
				s.close()
			}
			return nil, fmt.Errorf("connection %d of %d: %v", i+1, n, err)
		}
	}
	return slots, nil
}

// ---- one request ----------------------------------------------------------------------------------------

// outcome of one request: ok (a correct response), the body bytes read, or what went wrong.
type outcome struct {
	ok     bool
	status int
	proto  string
	read   int64
	ctype  string
	kind   string // "request", "status", "proto", "body", "header" when not ok
	err    string
}

// do sends one request on cc and reads the response whole into buf, then judges it.
func (c *client) do(cc *http3.ClientConn, buf *bytes.Buffer) outcome {
	var body io.Reader
	if c.body != nil {
		body = bytes.NewReader(c.body)
	}
	ctx, cancel := context.WithTimeout(context.Background(), c.cfg.timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, c.cfg.method, c.cfg.url, body)
	if err != nil {
		return outcome{kind: "request", err: err.Error()}
	}
	if c.body != nil {
		req.ContentLength = int64(len(c.body))
		req.Header.Set("Content-Type", "application/octet-stream")
	}
	resp, err := cc.RoundTrip(req)
	if err != nil {
		return outcome{kind: "request", err: fmt.Sprintf("%s %s: %v", c.cfg.method, c.target.Path, err)}
	}
	buf.Reset()
	n, rerr := buf.ReadFrom(resp.Body)
	resp.Body.Close()
	o := outcome{status: resp.StatusCode, proto: resp.Proto, read: n, ctype: resp.Header.Get("Content-Type")}
	switch {
	case rerr != nil:
		o.kind, o.err = "body", fmt.Sprintf("reading the body after %d bytes: %v", n, rerr)
	case resp.ProtoMajor != 3:
		o.kind, o.err = "proto", fmt.Sprintf("the response came over %q, not HTTP/3", resp.Proto)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		o.kind, o.err = "status", fmt.Sprintf("status %d: %q", resp.StatusCode, clip(buf.Bytes(), 80))
	case resp.ContentLength >= 0 && resp.ContentLength != n:
		o.kind, o.err = "body", fmt.Sprintf("content-length %d but %d body bytes", resp.ContentLength, n)
	case c.cfg.expectEcho && !bytes.Equal(buf.Bytes(), c.body):
		o.kind, o.err = "body", fmt.Sprintf("the echo differs from the %d bytes sent (%d bytes back, %s)",
			len(c.body), n, firstDiff(buf.Bytes(), c.body))
	case c.cfg.hasExpectBody && buf.String() != c.cfg.expectBody:
		o.kind, o.err = "body", fmt.Sprintf("body %q, want %q", clip(buf.Bytes(), 80), c.cfg.expectBody)
	case c.cfg.expectType != "" && !sameMediaType(o.ctype, c.cfg.expectType):
		o.kind, o.err = "header", fmt.Sprintf("Content-Type %q, want %s", o.ctype, c.cfg.expectType)
	default:
		o.ok = true
	}
	return o
}

func clip(b []byte, n int) string {
	if len(b) > n {
		return string(b[:n]) + "…"
	}
	return string(b)
}

func firstDiff(got, want []byte) string {
	for i := 0; i < min(len(got), len(want)); i++ {
		if got[i] != want[i] {
			return fmt.Sprintf("first difference at byte %d", i)
		}
	}
	return "one is a prefix of the other"
}

// sameMediaType: "text/plain; charset=utf-8" matches "text/plain" (parameters and case ignored).
func sameMediaType(got, want string) bool {
	mt, _, err := mime.ParseMediaType(got)
	if err != nil {
		mt = strings.TrimSpace(strings.SplitN(got, ";", 2)[0])
	}
	return strings.EqualFold(mt, want)
}

func (e *errCounts) count(kind string) {
	switch kind {
	case "request":
		e.Request++
	case "status":
		e.Status++
	case "proto":
		e.Proto++
	case "body":
		e.Body++
	case "header":
		e.Header++
	}
}

// ---- load -----------------------------------------------------------------------------------------------

// worker state, merged at the end
type tally struct {
	requests int64
	read     int64
	sent     int64
	status   map[string]int64
	lat      []int64
	errs     errCounts
	proto    string
}

func runLoad(cfg *config, res *result) int {
	c, err := newClient(cfg)
	if err != nil {
		res.Reason = err.Error()
		return 2
	}
	slots, err := c.connectAll(cfg.conns)
	if err != nil {
		res.Errors.Connect++
		res.Reason = err.Error()
		res.Dials = c.dials.Load()
		return 2
	}
	defer func() {
		for _, s := range slots {
			s.close()
		}
	}()
	res.TLS = connTLS(slots[0].conn)
	var phase atomic.Int32
	var tickets atomic.Int64 // -n: requests handed out in the timed phase
	tallies := make([]*tally, 0, cfg.conns*cfg.streams)
	var wg, counted sync.WaitGroup
	for _, s := range slots {
		for range cfg.streams {
			t := &tally{status: map[string]int64{}}
			tallies = append(tallies, t)
			wg.Add(1)
			if cfg.n > 0 {
				counted.Add(1)
			}
			go func(s *slot, t *tally) {
				defer wg.Done()
				inCount := cfg.n > 0 // still owes `counted` its Done
				defer func() {
					if inCount {
						counted.Done()
					}
				}()
				var buf bytes.Buffer
				for {
					ph := phase.Load()
					if ph == phaseStop {
						return
					}
					ticket := false
					if ph == phaseMeasure && cfg.n > 0 {
						if tickets.Add(1) > int64(cfg.n) {
							return
						}
						ticket = true
					}
					conn, cc, gone := s.current()
					if gone {
						return
					}
					t0 := time.Now()
					o := c.do(cc, &buf)
					elapsed := time.Since(t0)
					counts := ticket || (cfg.n == 0 && phase.Load() == phaseMeasure)
					if counts {
						if o.status != 0 {
							t.status[statusClass(o.status)]++
						}
						if o.ok {
							t.requests++
							t.read += o.read
							t.sent += int64(len(c.body))
							t.lat = append(t.lat, int64(elapsed))
							t.proto = o.proto
						} else {
							t.errs.count(o.kind)
							noteErr("%s", o.err)
						}
					}
					if !o.ok && conn.Context().Err() != nil {
						c.redial(s, conn, &t.errs)
					}
				}
			}(s, t)
		}
	}
	time.Sleep(cfg.warmup)
	fmt.Println(markStart)
	t0 := time.Now()
	phase.Store(phaseMeasure)
	if cfg.n > 0 {
		counted.Wait()
	} else {
		time.Sleep(cfg.duration)
	}
	phase.Store(phaseStop)
	elapsed := time.Since(t0)
	fmt.Println(markEnd)
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select { // the requests still in flight finish (not counted); each has its own -timeout
	case <-done:
	case <-time.After(cfg.timeout + 2*time.Second):
		for _, s := range slots { // ends them: their workers return
			s.close()
		}
		<-done
	}
	var lat []int64
	res.Status = map[string]int64{}
	for _, t := range tallies {
		res.Requests += t.requests
		res.BytesRead += t.read
		res.BytesSent += t.sent
		for k, v := range t.status {
			res.Status[k] += v
		}
		res.Errors.add(&t.errs)
		lat = append(lat, t.lat...)
		if t.proto != "" {
			res.Protocol = t.proto
		}
	}
	res.DurationS = elapsed.Seconds()
	if res.DurationS > 0 {
		res.RequestsPerSec = float64(res.Requests) / res.DurationS
		res.BytesPerSec = float64(res.BytesRead) / res.DurationS
	}
	res.LatencyMs = percentilesMs(lat)
	res.Dials = c.dials.Load()
	return 0
}

func connTLS(conn *quic.Conn) *tlsInfo {
	cs := conn.ConnectionState().TLS
	return &tlsInfo{Version: tls.VersionName(cs.Version), Cipher: tls.CipherSuiteName(cs.CipherSuite),
		ALPN: cs.NegotiatedProtocol, ServerName: cs.ServerName}
}

// ---- check ----------------------------------------------------------------------------------------------

// runCheck: one connection; the first two requests one after the other, the rest (-n in all) at once; every
// response must be right, and all of them must have gone over that one connection.
func runCheck(cfg *config, res *result) int {
	c, err := newClient(cfg)
	if err != nil {
		res.Reason = err.Error()
		return 2
	}
	pc, conn, cc, err := c.dial()
	if err != nil {
		res.Errors.Connect++
		res.Reason = fmt.Sprintf("no QUIC connection (HTTP/3) to %s: %v", c.target.Host, err)
		res.Dials = c.dials.Load()
		return 1
	}
	defer pc.Close()
	defer conn.CloseWithError(0, "")
	res.TLS = connTLS(conn)
	if res.TLS.ALPN != http3.NextProtoH3 {
		res.Reason = fmt.Sprintf("ALPN %q, not h3", res.TLS.ALPN)
		return 1
	}
	t0 := time.Now()
	outcomes := make([]outcome, cfg.n)
	one := func(i int) {
		var buf bytes.Buffer
		outcomes[i] = c.do(cc, &buf)
	}
	for i := 0; i < min(2, cfg.n); i++ {
		one(i)
	}
	var wg sync.WaitGroup
	for i := 2; i < cfg.n; i++ {
		wg.Add(1)
		go func(i int) { defer wg.Done(); one(i) }(i)
	}
	wg.Wait()
	res.DurationS = time.Since(t0).Seconds()
	res.Status = map[string]int64{}
	for i, o := range outcomes {
		if o.status != 0 {
			res.Status[statusClass(o.status)]++
		}
		if o.ok {
			res.Requests++
			res.BytesRead += o.read
			res.BytesSent += int64(len(c.body))
			res.Protocol = o.proto
			continue
		}
		res.Errors.count(o.kind)
		noteErr("request %d of %d: %s", i+1, cfg.n, o.err)
	}
	res.Dials = c.dials.Load()
	if conn.Context().Err() != nil && res.Errors.total() == 0 {
		res.Errors.Request++
		noteErr("the server closed the connection: %v", context.Cause(conn.Context()))
	}
	return 0
}

// -----------------------------------------------------------------------------------------------------

func main() {
	cfg := &config{}
	flag.StringVar(&cfg.url, "url", "", "https://host:port/path")
	flag.StringVar(&cfg.ca, "ca", "", "PEM file of the CA that must have signed the server certificate")
	flag.IntVar(&cfg.conns, "c", 64, "QUIC connections (one UDP socket each)")
	flag.IntVar(&cfg.streams, "m", 100, "concurrent request streams per connection")
	flag.StringVar(&cfg.method, "method", "GET", "request method")
	flag.IntVar(&cfg.bodySize, "body-size", 0, "request body bytes (pseudo-random, the same every run; 0: none)")
	flag.Func("expect-body", "every response body must be exactly this", func(s string) error {
		cfg.expectBody, cfg.hasExpectBody = s, true
		return nil
	})
	flag.BoolVar(&cfg.expectEcho, "expect-echo", false, "every response body must equal the request body")
	flag.StringVar(&cfg.expectType, "expect-type", "", "every response's media type (Content-Type without parameters)")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "warm-up after connecting, before the timed window")
	flag.DurationVar(&cfg.duration, "d", 3*time.Second, "timed window (unless -n)")
	flag.IntVar(&cfg.n, "n", 0, "a fixed count of requests in the timed window instead of -d (-check: requests, default 4)")
	flag.BoolVar(&cfg.check, "check", false, "correctness check instead of load: one connection, -n requests (2 one after "+
		"the other, the rest at once), every one right")
	flag.DurationVar(&cfg.timeout, "timeout", 15*time.Second, "limit of one request")
	flag.DurationVar(&cfg.handshakeTimeout, "handshake-timeout", 5*time.Second, "QUIC handshake limit")
	flag.Parse()
	if cfg.check && cfg.n == 0 {
		cfg.n = 4
	}
	res := &result{Tool: "h3load", Version: version, URL: cfg.url, Method: cfg.method, Check: cfg.check,
		BodySize: cfg.bodySize, WarmupS: cfg.warmup.Seconds(), LatencyMs: map[string]float64{},
		Status: map[string]int64{}}
	if cfg.check {
		res.WarmupS = 0
	}
	code := 0
	switch {
	case cfg.url == "" || cfg.ca == "":
		res.Reason, code = "-url and -ca are required", 2
	case cfg.conns < 1 || cfg.streams < 1 || cfg.n < 0 || cfg.bodySize < 0:
		res.Reason, code = "-c and -m must be at least 1, -n and -body-size at least 0", 2
	case cfg.expectEcho && cfg.bodySize == 0:
		res.Reason, code = "-expect-echo needs -body-size", 2
	case cfg.check:
		res.Connections, res.Streams = 1, max(1, cfg.n-2)
		code = runCheck(cfg, res)
	default:
		res.Connections, res.Streams = cfg.conns, cfg.streams
		code = runLoad(cfg, res)
	}
	res.ErrorsTotal = res.Errors.total()
	res.FirstError = takeFirstErr()
	if cfg.check && code == 0 && res.Dials > 1 {
		res.Reason = fmt.Sprintf("%d QUIC connections for %d requests (want 1)", res.Dials, cfg.n)
	}
	res.OK = code == 0 && res.ErrorsTotal == 0 && res.Reason == ""
	if code == 0 && cfg.check && !res.OK {
		code = 1
		if res.Reason == "" {
			res.Reason = res.FirstError
			if res.Reason == "" {
				res.Reason = fmt.Sprintf("%d errors", res.ErrorsTotal)
			}
		}
	}
	if code == 0 && !cfg.check {
		fmt.Printf("%s %s: %d requests in %.2f s = %.0f req/s, %.1f MB/s read; p50 %.3f ms, p99 %.3f ms; %d errors\n",
			cfg.method, cfg.url, res.Requests, res.DurationS, res.RequestsPerSec, res.BytesPerSec/1e6,
			res.LatencyMs["50"], res.LatencyMs["99"], res.ErrorsTotal)
	}
	out, err := json.Marshal(res)
	if err != nil {
		panic(errors.New("cannot encode the result"))
	}
	fmt.Printf("%s%s\n", resultPrefix, out)
	os.Exit(code)
}
