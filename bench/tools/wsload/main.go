// wsload: a small WebSocket load generator for the CovetPy benchmark matrix (python -m bench).
//
//	wsload -mode echo -url ws://127.0.0.1:8000/ws/echo -c 64 -size 64 -inflight 1 -warmup 1s -d 3s
//	wsload -mode broadcast -url ws://127.0.0.1:8000/ws/room/bench -subs 100 -size 64 -window 1 -warmup 1s -d 3s
//	wsload -mode echo -url ... -check        (correctness gate: exit 0 when right, 1 when not)
//
// echo: C connections, each sends a text message of N bytes and waits for its echo (closed loop; -inflight P
// keeps P messages in flight per connection). Every echo is compared byte for byte with what was sent.
//
// broadcast: S subscriber connections join one room, then one publisher connection (also in the room) sends
// text messages "m<seq>:<send-ns>:xxxx…" of N bytes, either with at most -window messages not yet received by
// every subscriber (-rate 0, the default: the publisher waits for delivery) or at a fixed -rate per second
// (open loop). Every subscriber must receive every message, in order; delivery latency comes from the send
// timestamp in the payload (one process, one monotonic clock).
//
// Output: human-readable lines, "WSLOAD_MARK start" / "WSLOAD_MARK end" around the timed window (after
// connecting and warming up, so the caller can sample the server's CPU exactly over it), and one line
// "WSLOAD_RESULT {json}" at the end. Exit status: 0 = ran (errors are counted in the JSON), 1 = the -check
// failed, 2 = could not run (usage, connection refused, the room never became ready).
package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

const version = "1"

var base = time.Now()

func now() int64 { return int64(time.Since(base)) }

// phases of a load run
const (
	phaseWarm int32 = iota
	phaseMeasure
	phaseStop
)

var phase atomic.Int32

type config struct {
	mode     string
	url      string
	conns    int
	size     int
	inflight int
	subs     int
	window   int
	rate     float64
	warmup   time.Duration
	duration time.Duration
	check    bool
	timeout  time.Duration
}

type errCounts struct {
	Connect  int64 `json:"connect"`
	Read     int64 `json:"read"`
	Write    int64 `json:"write"`
	Mismatch int64 `json:"mismatch"`
	Order    int64 `json:"order"`
	Missing  int64 `json:"missing"`
	Stalled  int64 `json:"stalled"`
}

func (e *errCounts) total() int64 {
	return e.Connect + e.Read + e.Write + e.Mismatch + e.Order + e.Missing + e.Stalled
}

func (e *errCounts) add(o *errCounts) {
	e.Connect += o.Connect
	e.Read += o.Read
	e.Write += o.Write
	e.Mismatch += o.Mismatch
	e.Order += o.Order
	e.Missing += o.Missing
	e.Stalled += o.Stalled
}

type result struct {
	Tool           string             `json:"tool"`
	Version        string             `json:"version"`
	Mode           string             `json:"mode"`
	URL            string             `json:"url"`
	Check          bool               `json:"check"`
	OK             bool               `json:"ok"`
	Reason         string             `json:"reason,omitempty"`
	Connections    int                `json:"connections"`
	Subscribers    int                `json:"subscribers,omitempty"`
	Inflight       int                `json:"inflight,omitempty"`
	Window         int                `json:"window,omitempty"`
	Rate           float64            `json:"rate,omitempty"`
	Size           int                `json:"size"`
	WarmupS        float64            `json:"warmup_s"`
	DurationS      float64            `json:"duration_s"`
	Messages       int64              `json:"messages"` // echo: echoes received; broadcast: deliveries to subscribers
	MessagesPerSec float64            `json:"messages_per_sec"`
	Published      int64              `json:"published,omitempty"` // broadcast: messages the publisher sent
	PublishedPerS  float64            `json:"published_per_sec,omitempty"`
	LatencyMs      map[string]float64 `json:"latency_ms"`
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

var dialer = websocket.Dialer{HandshakeTimeout: 5 * time.Second, ReadBufferSize: 16384, WriteBufferSize: 16384}

func dial(url string) (*websocket.Conn, error) {
	c, resp, err := dialer.Dial(url, nil)
	if err != nil {
		if resp != nil {
			return nil, fmt.Errorf("%v (HTTP %d)", err, resp.StatusCode)
		}
		return nil, err
	}
	return c, nil
}

// readInto reads one whole message into buf (grown as needed); returns its type and bytes.
func readInto(c *websocket.Conn, buf *[]byte) (int, []byte, error) {
	typ, r, err := c.NextReader()
	if err != nil {
		return 0, nil, err
	}
	b := (*buf)[:0]
	for {
		if len(b) == cap(b) {
			b = append(b, 0)[:len(b)]
		}
		n, err := r.Read(b[len(b):cap(b)])
		b = b[:len(b)+n]
		if err == io.EOF {
			break
		}
		if err != nil {
			return 0, nil, err
		}
	}
	*buf = b
	return typ, b, nil
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
		if k < 1 {
			k = 1
		}
		if k > len(lat) {
			k = len(lat)
		}
		out[p.k] = float64(lat[k-1]) / 1e6
	}
	out["max"] = float64(lat[len(lat)-1]) / 1e6
	return out
}

// ---- echo ------------------------------------------------------------------------------------------

// echoPayload: the text of message seq on connection id, exactly size bytes (ASCII; UTF-8 in -check mode).
func echoPayload(dst []byte, id int, seq uint64, size int, fancy bool) []byte {
	dst = dst[:0]
	dst = append(dst, 'e')
	dst = strconv.AppendInt(dst, int64(id), 10)
	dst = append(dst, ':')
	dst = strconv.AppendUint(dst, seq, 10)
	dst = append(dst, ':')
	if fancy {
		dst = append(dst, "é€😀"...)
	}
	for len(dst) < size {
		dst = append(dst, byte('a'+(seq+uint64(len(dst)))%26))
	}
	return dst
}

type echoConn struct {
	id   int
	c    *websocket.Conn
	lat  []int64
	msgs int64
	sent int64
	errs errCounts
}

func (e *echoConn) runSync(cfg *config, sizes []int) {
	var want, rbuf []byte
	rbuf = make([]byte, 0, 4096)
	for seq := uint64(0); ; seq++ {
		if phase.Load() == phaseStop {
			return
		}
		size := cfg.size
		if sizes != nil {
			if int(seq) >= len(sizes) {
				return
			}
			size = sizes[seq]
		}
		want = echoPayload(want, e.id, seq, size, cfg.check)
		t0 := now()
		if err := e.c.WriteMessage(websocket.TextMessage, want); err != nil {
			e.errs.Write++
			noteErr("write: %v", err)
			return
		}
		e.sent++
		e.c.SetReadDeadline(time.Now().Add(cfg.timeout))
		typ, got, err := readInto(e.c, &rbuf)
		if err != nil {
			e.errs.Read++
			noteErr("read: %v", err)
			return
		}
		t1 := now()
		if typ != websocket.TextMessage || !bytes.Equal(got, want) {
			e.errs.Mismatch++
			noteErr("echo differs: sent %d bytes %q…, got type %d, %d bytes %q…", len(want), clip(want), typ, len(got), clip(got))
		}
		if phase.Load() == phaseMeasure || sizes != nil {
			e.msgs++
			e.lat = append(e.lat, t1-t0)
		}
	}
}

// runPipelined: P messages in flight; the reader checks each echo against the regenerated payload.
func (e *echoConn) runPipelined(cfg *config) {
	p := cfg.inflight
	sentAt := make([]atomic.Int64, p)
	tokens := make(chan struct{}, p)
	for i := 0; i < p; i++ {
		tokens <- struct{}{}
	}
	var sent, received atomic.Uint64
	var stopped atomic.Bool
	go func() {
		var buf []byte
		for seq := uint64(0); ; seq++ {
			<-tokens
			if phase.Load() == phaseStop {
				// Wake a reader waiting for an echo of a message that was never sent. Only when nothing is
				// outstanding: a deadline would also cut short an echo still on its way (and gorilla's
				// read errors are final); otherwise the reader returns by itself after the last echo.
				stopped.Store(true)
				if received.Load() >= sent.Load() {
					e.c.SetReadDeadline(time.Now())
				}
				return
			}
			buf = echoPayload(buf, e.id, seq, cfg.size, false)
			sentAt[seq%uint64(p)].Store(now())
			if err := e.c.WriteMessage(websocket.TextMessage, buf); err != nil {
				e.errs.Write++
				noteErr("write: %v", err)
				return
			}
			sent.Store(seq + 1)
		}
	}()
	var want []byte
	rbuf := make([]byte, 0, 4096)
	for seq := uint64(0); ; seq++ {
		if phase.Load() == phaseStop && seq >= sent.Load() {
			e.sent = int64(sent.Load()) // (a message the writer sends after this is left unread: not an error)
			return
		}
		if !stopped.Load() {
			e.c.SetReadDeadline(time.Now().Add(cfg.timeout))
		}
		typ, got, err := readInto(e.c, &rbuf)
		if err != nil {
			if phase.Load() == phaseStop && seq >= sent.Load() {
				return // nothing was outstanding: woken by the writer at the stop
			}
			e.errs.Read++
			noteErr("read: %v", err)
			return
		}
		t1 := now()
		want = echoPayload(want, e.id, seq, cfg.size, false)
		if typ != websocket.TextMessage || !bytes.Equal(got, want) {
			e.errs.Mismatch++
			noteErr("echo differs: expected %q…, got %q…", clip(want), clip(got))
		}
		if phase.Load() == phaseMeasure {
			e.msgs++
			e.lat = append(e.lat, t1-sentAt[seq%uint64(p)].Load())
		}
		received.Store(seq + 1)
		tokens <- struct{}{}
	}
}

func clip(b []byte) []byte {
	if len(b) > 40 {
		return b[:40]
	}
	return b
}

func runEcho(cfg *config, res *result) int {
	conns := make([]*echoConn, 0, cfg.conns)
	defer func() {
		for _, e := range conns {
			closeConn(e.c)
		}
	}()
	for i := 0; i < cfg.conns; i++ {
		c, err := dial(cfg.url)
		if err != nil {
			res.Errors.Connect++
			res.Reason = fmt.Sprintf("connect %d of %d: %v", i+1, cfg.conns, err)
			return 2
		}
		conns = append(conns, &echoConn{id: i, c: c})
	}
	var sizes []int
	if cfg.check {
		sizes = []int{1, 64, 125, 126, 1000, 65535, 65536, 70000, 64, 3}
	}
	var wg sync.WaitGroup
	for _, e := range conns {
		wg.Add(1)
		go func(e *echoConn) {
			defer wg.Done()
			if cfg.inflight > 1 && !cfg.check {
				e.runPipelined(cfg)
			} else {
				e.runSync(cfg, sizes)
			}
		}(e)
	}
	t0, t1 := timeline(cfg, &wg)
	var lat []int64
	for _, e := range conns {
		res.Messages += e.msgs
		res.Errors.add(&e.errs)
		lat = append(lat, e.lat...)
	}
	res.DurationS = float64(t1-t0) / 1e9
	if res.DurationS > 0 && !cfg.check {
		res.MessagesPerSec = float64(res.Messages) / res.DurationS
	}
	res.LatencyMs = percentilesMs(lat)
	if cfg.check {
		want := int64(len(sizes) * cfg.conns)
		if res.Messages != want && res.Errors.total() == 0 {
			res.Errors.Missing = want - res.Messages
		}
	}
	return 0
}

// timeline: warm-up, the timed window (between the two marks), stop; then waits for the workers (which
// finish what is in flight). In -check mode the workers end by themselves. Returns the window in now() ns.
func timeline(cfg *config, wg *sync.WaitGroup) (int64, int64) {
	if cfg.check {
		t0 := now()
		done := make(chan struct{})
		go func() { wg.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(cfg.timeout + 5*time.Second):
			phase.Store(phaseStop)
			noteErr("check did not finish in %v", cfg.timeout+5*time.Second)
		}
		return t0, now()
	}
	time.Sleep(cfg.warmup)
	fmt.Println("WSLOAD_MARK start")
	t0 := now()
	phase.Store(phaseMeasure)
	time.Sleep(cfg.duration)
	phase.Store(phaseStop)
	t1 := now()
	fmt.Println("WSLOAD_MARK end")
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(cfg.timeout + 2*time.Second):
		noteErr("connections still busy %v after the run", cfg.timeout+2*time.Second)
	}
	return t0, t1
}

func closeConn(c *websocket.Conn) {
	if c == nil {
		return
	}
	c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""),
		time.Now().Add(200*time.Millisecond))
	c.Close()
}

// ---- broadcast --------------------------------------------------------------------------------------

const ring = 1 << 16

type subscriber struct {
	c      *websocket.Conn
	synced atomic.Bool
	got    atomic.Int64 // data messages received (all phases)
	next   int64        // next expected sequence number
	lat    []int64
	msgs   int64
	errs   errCounts
}

// parseData: "m<seq>:<ns>:" + 'x' padding, exactly size bytes.
func parseData(b []byte, size int) (seq int64, ts int64, ok bool) {
	if len(b) < 4 || b[0] != 'm' || (size > 0 && len(b) != size) {
		return 0, 0, false
	}
	i := bytes.IndexByte(b[1:], ':')
	if i < 0 {
		return 0, 0, false
	}
	seq, err := strconv.ParseInt(string(b[1:1+i]), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	rest := b[2+i:]
	j := bytes.IndexByte(rest, ':')
	if j < 0 {
		return 0, 0, false
	}
	ts, err = strconv.ParseInt(string(rest[:j]), 10, 64)
	if err != nil {
		return 0, 0, false
	}
	for _, c := range rest[j+1:] {
		if c != 'x' {
			return 0, 0, false
		}
	}
	return seq, ts, true
}

func dataPayload(dst []byte, seq int64, ts int64, size int) []byte {
	dst = dst[:0]
	dst = append(dst, 'm')
	dst = strconv.AppendInt(dst, seq, 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, ts, 10)
	dst = append(dst, ':')
	for len(dst) < size {
		dst = append(dst, 'x')
	}
	return dst
}

func runBroadcast(cfg *config, res *result) int {
	subs := make([]*subscriber, 0, cfg.subs)
	var pub *websocket.Conn
	defer func() {
		for _, s := range subs {
			closeConn(s.c)
		}
		closeConn(pub)
	}()
	for i := 0; i < cfg.subs; i++ {
		c, err := dial(cfg.url)
		if err != nil {
			res.Errors.Connect++
			res.Reason = fmt.Sprintf("subscriber %d of %d: %v", i+1, cfg.subs, err)
			return 2
		}
		subs = append(subs, &subscriber{c: c})
	}
	c, err := dial(cfg.url)
	if err != nil {
		res.Errors.Connect++
		res.Reason = fmt.Sprintf("publisher: %v", err)
		return 2
	}
	pub = c
	pending := make([]atomic.Int32, ring)
	acks := make(chan int64, ring)
	var synced atomic.Int32
	ackMode := cfg.rate <= 0
	var wg sync.WaitGroup
	for _, s := range subs {
		wg.Add(1)
		go func(s *subscriber) {
			defer wg.Done()
			rbuf := make([]byte, 0, 4096)
			for {
				typ, b, err := readInto(s.c, &rbuf)
				if err != nil {
					if phase.Load() != phaseStop {
						s.errs.Read++
						noteErr("subscriber read: %v", err)
					}
					return
				}
				t1 := now()
				if len(b) > 0 && b[0] == 's' && typ == websocket.TextMessage {
					if s.synced.CompareAndSwap(false, true) {
						synced.Add(1)
					}
					continue
				}
				seq, ts, ok := parseData(b, cfg.size)
				if !ok || typ != websocket.TextMessage {
					s.errs.Mismatch++
					noteErr("subscriber got %q…, not a %d-byte data message", clip(b), cfg.size)
					continue
				}
				if seq != s.next {
					s.errs.Order++
					noteErr("subscriber expected message %d, got %d", s.next, seq)
				}
				s.next = seq + 1
				s.got.Add(1)
				if phase.Load() == phaseMeasure || cfg.check {
					s.msgs++
					s.lat = append(s.lat, t1-ts)
				}
				if ackMode && pending[seq%ring].Add(-1) == 0 {
					acks <- seq
				}
			}
		}(s)
	}
	// the publisher is in the room too: drain its own copies
	go func() {
		rbuf := make([]byte, 0, 4096)
		for {
			if _, _, err := readInto(pub, &rbuf); err != nil {
				return
			}
		}
	}()
	// sync: repeat a marker until every subscriber has seen one (subscriptions are in place)
	deadline := time.Now().Add(cfg.timeout + 5*time.Second)
	for int(synced.Load()) < cfg.subs {
		if time.Now().After(deadline) {
			res.Reason = fmt.Sprintf("only %d of %d subscribers received the publisher's messages within %v",
				synced.Load(), cfg.subs, cfg.timeout+5*time.Second)
			res.Errors.Missing = int64(cfg.subs) - int64(synced.Load())
			phase.Store(phaseStop)
			return 2
		}
		if err := pub.WriteMessage(websocket.TextMessage, []byte("sync")); err != nil {
			res.Reason = fmt.Sprintf("publisher write: %v", err)
			res.Errors.Write++
			phase.Store(phaseStop)
			return 2
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(50 * time.Millisecond) // late sync copies arrive before data (one connection, in order)

	var published int64
	var windowPub int64
	pubDone := make(chan struct{})
	total := int64(-1)
	if cfg.check {
		total = 200
	}
	go func() {
		defer close(pubDone)
		var buf []byte
		inflight := 0
		timer := time.NewTimer(time.Hour)
		interval := time.Duration(0)
		if !ackMode {
			interval = time.Duration(float64(time.Second) / cfg.rate)
		}
		start := time.Now()
		for seq := int64(0); total < 0 || seq < total; seq++ {
			if phase.Load() == phaseStop {
				break
			}
			if ackMode {
				for inflight >= cfg.window {
					timer.Reset(cfg.timeout)
					select {
					case <-acks:
						inflight--
					case <-timer.C:
						res.Errors.Stalled++
						noteErr("message %d not delivered to every subscriber within %v", seq-int64(inflight), cfg.timeout)
						return
					}
				}
				pending[seq%ring].Store(int32(cfg.subs))
				inflight++
			} else if d := time.Until(start.Add(time.Duration(seq) * interval)); d > 0 {
				time.Sleep(d)
			}
			buf = dataPayload(buf, seq, now(), cfg.size)
			if err := pub.WriteMessage(websocket.TextMessage, buf); err != nil {
				res.Errors.Write++
				noteErr("publisher write: %v", err)
				return
			}
			published = seq + 1
			if phase.Load() == phaseMeasure {
				windowPub++
			}
		}
	}()
	var t0, t1 int64
	if cfg.check {
		t0 = now()
		<-pubDone
		t1 = now()
	} else {
		time.Sleep(cfg.warmup)
		fmt.Println("WSLOAD_MARK start")
		t0 = now()
		phase.Store(phaseMeasure)
		time.Sleep(cfg.duration)
		phase.Store(phaseStop)
		t1 = now()
		fmt.Println("WSLOAD_MARK end")
		<-pubDone
	}
	// wait for every subscriber to have everything that was published
	deadline = time.Now().Add(cfg.timeout)
	for time.Now().Before(deadline) {
		all := true
		for _, s := range subs {
			if s.got.Load() < published {
				all = false
				break
			}
		}
		if all {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	phase.Store(phaseStop)
	for _, s := range subs {
		closeConn(s.c) // ends the readers
	}
	wg.Wait()
	var lat []int64
	for _, s := range subs {
		res.Messages += s.msgs
		res.Errors.add(&s.errs)
		if miss := published - s.got.Load(); miss > 0 {
			res.Errors.Missing += miss
			noteErr("a subscriber received %d of %d messages", s.got.Load(), published)
		}
		lat = append(lat, s.lat...)
	}
	res.DurationS = float64(t1-t0) / 1e9
	res.Published = windowPub
	if cfg.check {
		res.Published = published
		if published < total && res.Errors.total() == 0 {
			res.Errors.Stalled++
		}
	} else if res.DurationS > 0 {
		res.MessagesPerSec = float64(res.Messages) / res.DurationS
		res.PublishedPerS = float64(windowPub) / res.DurationS
	}
	res.LatencyMs = percentilesMs(lat)
	return 0
}

// -----------------------------------------------------------------------------------------------------

func main() {
	cfg := &config{}
	flag.StringVar(&cfg.mode, "mode", "echo", "echo | broadcast")
	flag.StringVar(&cfg.url, "url", "", "ws://host:port/path")
	flag.IntVar(&cfg.conns, "c", 64, "echo: connections")
	flag.IntVar(&cfg.size, "size", 64, "message size in bytes (text)")
	flag.IntVar(&cfg.inflight, "inflight", 1, "echo: messages in flight per connection")
	flag.IntVar(&cfg.subs, "subs", 100, "broadcast: subscriber connections (plus one publisher)")
	flag.IntVar(&cfg.window, "window", 1, "broadcast: messages the publisher may have not yet delivered to every subscriber (-rate 0)")
	flag.Float64Var(&cfg.rate, "rate", 0, "broadcast: fixed publish rate, messages/s (open loop); 0 = wait for delivery (-window)")
	flag.DurationVar(&cfg.warmup, "warmup", time.Second, "warm-up before the timed window")
	flag.DurationVar(&cfg.duration, "d", 3*time.Second, "timed window")
	flag.BoolVar(&cfg.check, "check", false, "correctness check instead of load: echo: sizes 1..70000 B with UTF-8 text on every connection; broadcast: 200 messages to every subscriber, in order")
	flag.DurationVar(&cfg.timeout, "timeout", 5*time.Second, "read/delivery timeout")
	flag.Parse()
	res := &result{Tool: "wsload", Version: version, Mode: cfg.mode, URL: cfg.url, Check: cfg.check, Size: cfg.size,
		WarmupS: cfg.warmup.Seconds(), LatencyMs: map[string]float64{}}
	code := 0
	switch {
	case cfg.url == "":
		res.Reason, code = "-url is required", 2
	case cfg.size < 16 && !cfg.check:
		res.Reason, code = "-size must be at least 16", 2
	case cfg.mode == "echo":
		if cfg.conns < 1 || cfg.inflight < 1 {
			res.Reason, code = "-c and -inflight must be at least 1", 2
			break
		}
		res.Connections, res.Inflight = cfg.conns, cfg.inflight
		code = runEcho(cfg, res)
	case cfg.mode == "broadcast":
		if cfg.subs < 1 || cfg.window < 1 || cfg.window >= ring {
			res.Reason, code = "-subs must be at least 1 and -window in 1..65535", 2
			break
		}
		if cfg.size < 48 {
			cfg.size = 48 // room for "m<seq>:<ns>:" in every message
			res.Size = 48
		}
		res.Connections, res.Subscribers = cfg.subs+1, cfg.subs
		if cfg.rate > 0 {
			res.Rate = cfg.rate
		} else {
			res.Window = cfg.window
		}
		code = runBroadcast(cfg, res)
	default:
		res.Reason, code = fmt.Sprintf("unknown -mode %q", cfg.mode), 2
	}
	res.ErrorsTotal = res.Errors.total()
	res.FirstError = takeFirstErr()
	res.OK = code == 0 && res.ErrorsTotal == 0
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
		fmt.Printf("%s %s: %d messages in %.2f s = %.0f msg/s; p50 %.3f ms, p99 %.3f ms; %d errors\n",
			cfg.mode, cfg.url, res.Messages, res.DurationS, res.MessagesPerSec, res.LatencyMs["50"], res.LatencyMs["99"],
			res.ErrorsTotal)
	}
	out, err := json.Marshal(res)
	if err != nil {
		panic(errors.New("cannot encode the result"))
	}
	fmt.Printf("WSLOAD_RESULT %s\n", out)
	os.Exit(code)
}
