package main

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/gorilla/websocket"
)

func reset() {
	phase.Store(phaseWarm)
	firstErrMu.Lock()
	firstErr = ""
	firstErrMu.Unlock()
}

func wsURL(s *httptest.Server, path string) string {
	return "ws" + strings.TrimPrefix(s.URL, "http") + path
}

func TestPayloads(t *testing.T) {
	b := dataPayload(nil, 42, 123456789, 64)
	if len(b) != 64 {
		t.Fatalf("data payload is %d bytes", len(b))
	}
	seq, ts, ok := parseData(b, 64)
	if !ok || seq != 42 || ts != 123456789 {
		t.Fatalf("parseData = %d %d %v", seq, ts, ok)
	}
	if _, _, ok := parseData(b[:63], 64); ok {
		t.Fatal("a short message passed")
	}
	bad := append([]byte(nil), b...)
	bad[60] = 'y'
	if _, _, ok := parseData(bad, 64); ok {
		t.Fatal("a corrupted message passed")
	}
	e := echoPayload(nil, 3, 7, 64, false)
	if len(e) != 64 || !strings.HasPrefix(string(e), "e3:7:") {
		t.Fatalf("echo payload %q", e)
	}
	f := echoPayload(nil, 3, 7, 1000, true)
	if len(f) != 1000 || !utf8.Valid(f) || !strings.Contains(string(f), "😀") {
		t.Fatalf("UTF-8 echo payload %q", f[:20])
	}
}

func TestPercentiles(t *testing.T) {
	var lat []int64
	for i := 1000; i >= 1; i-- {
		lat = append(lat, int64(i)*1e6)
	}
	p := percentilesMs(lat)
	if p["50"] != 500 || p["99"] != 990 || p["99.9"] != 999 || p["max"] != 1000 {
		t.Fatalf("percentiles %v", p)
	}
	if len(percentilesMs(nil)) != 0 {
		t.Fatal("percentiles of nothing")
	}
}

// echo server; corrupt: flips a bit of the last byte of messages longer than 100 bytes
func echoServer(corrupt bool) *httptest.Server {
	up := websocket.Upgrader{}
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			typ, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			if corrupt && len(b) > 100 {
				b[len(b)-1] ^= 1
			}
			if c.WriteMessage(typ, b) != nil {
				return
			}
		}
	}))
}

// a room: every message goes to every member (publisher included); drop: the first member never gets "m10:…"
func hubServer(drop bool) *httptest.Server {
	up := websocket.Upgrader{}
	var mu sync.Mutex
	var members []*websocket.Conn
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		mu.Lock()
		members = append(members, c)
		mu.Unlock()
		for {
			typ, b, err := c.ReadMessage()
			if err != nil {
				return
			}
			mu.Lock()
			for i, m := range members {
				if drop && i == 0 && strings.HasPrefix(string(b), "m10:") {
					continue
				}
				m.WriteMessage(typ, b)
			}
			mu.Unlock()
		}
	}))
}

func TestEchoCheck(t *testing.T) {
	for _, corrupt := range []bool{false, true} {
		reset()
		s := echoServer(corrupt)
		res := &result{}
		cfg := &config{mode: "echo", url: wsURL(s, "/ws/echo"), conns: 3, inflight: 1, check: true, timeout: 2 * time.Second}
		if code := runEcho(cfg, res); code != 0 {
			t.Fatalf("runEcho exited %d: %s", code, res.Reason)
		}
		if corrupt != (res.Errors.Mismatch > 0) {
			t.Fatalf("corrupt=%v: %d mismatches (%s)", corrupt, res.Errors.Mismatch, takeFirstErr())
		}
		if !corrupt && (res.Messages != 30 || res.Errors.total() != 0) {
			t.Fatalf("%d messages, errors %+v", res.Messages, res.Errors)
		}
		s.Close()
	}
}

func TestEchoLoadShort(t *testing.T) {
	for _, p := range []int{1, 4} {
		reset()
		s := echoServer(false)
		res := &result{}
		cfg := &config{mode: "echo", url: wsURL(s, "/ws/echo"), conns: 4, size: 64, inflight: p,
			warmup: 50 * time.Millisecond, duration: 150 * time.Millisecond, timeout: 2 * time.Second}
		if code := runEcho(cfg, res); code != 0 {
			t.Fatalf("runEcho exited %d: %s", code, res.Reason)
		}
		if res.Messages == 0 || res.MessagesPerSec <= 0 || res.Errors.total() != 0 || res.LatencyMs["99"] <= 0 {
			t.Fatalf("inflight %d: %+v (%s)", p, res, takeFirstErr())
		}
		s.Close()
	}
}

func TestBroadcastCheck(t *testing.T) {
	for _, drop := range []bool{false, true} {
		reset()
		s := hubServer(drop)
		res := &result{}
		cfg := &config{mode: "broadcast", url: wsURL(s, "/ws/room/x"), subs: 3, size: 64, window: 1, check: true,
			timeout: 500 * time.Millisecond}
		if code := runBroadcast(cfg, res); code != 0 {
			t.Fatalf("runBroadcast exited %d: %s", code, res.Reason)
		}
		if !drop && (res.Messages != 600 || res.Errors.total() != 0) {
			t.Fatalf("%d deliveries, errors %+v (%s)", res.Messages, res.Errors, takeFirstErr())
		}
		if drop && (res.Errors.Stalled+res.Errors.Missing+res.Errors.Order == 0) {
			t.Fatalf("a dropped broadcast went unnoticed: %+v", res.Errors)
		}
		s.Close()
	}
}

func TestBroadcastLoadShort(t *testing.T) {
	reset()
	s := hubServer(false)
	defer s.Close()
	res := &result{}
	cfg := &config{mode: "broadcast", url: wsURL(s, "/ws/room/x"), subs: 10, size: 64, window: 2,
		warmup: 50 * time.Millisecond, duration: 150 * time.Millisecond, timeout: 2 * time.Second}
	if code := runBroadcast(cfg, res); code != 0 {
		t.Fatalf("runBroadcast exited %d: %s", code, res.Reason)
	}
	if res.Messages == 0 || res.Published == 0 || res.Errors.total() != 0 {
		t.Fatalf("%+v (%s)", res, takeFirstErr())
	}
}

func TestConnectionRefused(t *testing.T) {
	reset()
	s := echoServer(false)
	url := wsURL(s, "/ws/echo")
	s.Close()
	res := &result{}
	cfg := &config{mode: "echo", url: url, conns: 2, inflight: 1, check: true, timeout: time.Second}
	if code := runEcho(cfg, res); code != 2 || res.Errors.Connect != 1 {
		t.Fatalf("code %d, %+v", code, res.Errors)
	}
}
