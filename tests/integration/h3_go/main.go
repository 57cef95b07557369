// Command h3-go-client is the quic-go HTTP/3 client of tests/integration/test_http3_interop.py.
//
// It sends -n requests to -url over ONE http3.Transport (so one QUIC connection, unless the
// connection fails and the transport dials again: every dial is counted and reported), verifies
// the server certificate against the PEM CA of -ca, and prints one JSON line per response:
//
//	{"type":"response","i":0,"status":200,"proto":"HTTP/3.0","len":13,"sha256":"…",
//	 "sent_len":0,"sent_sha256":"…","content_type":"text/plain","ms":1,"body":"Hello, World!"}
//
// ("body" only for bodies of at most -show-body bytes; with -body-size each request i sends its own
// pseudo-random body, whose sha256 is "sent_sha256"), then one summary line
// {"type":"summary","requests":N,"errors":0,"connections":1,"alpn":"h3","tls_version":"TLS 1.3",…}.
//
// Example: h3-go-client -url https://localhost:8443/echo -method POST -body-size 1048576 -n 2 -ca ca.pem
// Any error (transport error, a status other than -expect-status, a short body, a response that
// is not HTTP/3) is reported on stderr and makes the exit status non-zero.
package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/quic-go/quic-go"
	"github.com/quic-go/quic-go/http3"
)

type result struct {
	Type        string `json:"type"`
	I           int    `json:"i"`
	Status      int    `json:"status"`
	Proto       string `json:"proto"`
	Len         int64  `json:"len"`
	SHA256      string `json:"sha256"`
	SentLen     int    `json:"sent_len"`
	SentSHA256  string `json:"sent_sha256"`
	ContentType string `json:"content_type"`
	Millis      int64  `json:"ms"`
	Body        string `json:"body,omitempty"`
}

type summary struct {
	Type        string   `json:"type"`
	Requests    int      `json:"requests"`
	Errors      int      `json:"errors"`
	Connections int64    `json:"connections"`
	LocalAddrs  []string `json:"local_addrs"`
	RemoteAddr  string   `json:"remote_addr"`
	ALPN        string   `json:"alpn"`
	TLSVersion  string   `json:"tls_version"`
	ServerName  string   `json:"server_name"`
	PeerCN      string   `json:"peer_cn"`
	Millis      int64    `json:"ms"`
}

// body returns the request body of request i: size pseudo-random bytes, the same for the same i.
func body(i, size int) []byte {
	r := rand.New(rand.NewChaCha8([32]byte{byte(i), byte(i >> 8), 'c', 'o', 'v', 'e', 't'}))
	b := make([]byte, size)
	for j := range b {
		b[j] = byte(r.Uint32())
	}
	return b
}

func hexSum(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func main() {
	rawURL := flag.String("url", "", "request URL, https://host:port/path (required)")
	n := flag.Int("n", 1, "number of requests, all over one HTTP/3 transport")
	concurrency := flag.Int("c", 1, "requests in flight at once")
	method := flag.String("method", "GET", "request method")
	bodySize := flag.Int("body-size", 0, "request body size in bytes (pseudo-random bytes; 0: no body)")
	caFile := flag.String("ca", "", "PEM file of the CA that must have signed the server certificate (required)")
	addr := flag.String("addr", "", "dial this host:port instead of the URL's (SNI and :authority stay the URL's)")
	expectStatus := flag.Int("expect-status", 200, "status every response must have (0: any)")
	timeout := flag.Duration("timeout", 60*time.Second, "limit for the whole run")
	showBody := flag.Int("show-body", 4096, "put response bodies of at most this many bytes in the JSON line")
	handshakeTimeout := flag.Duration("handshake-timeout", 5*time.Second, "QUIC handshake limit")
	flag.Parse()

	fail := func(format string, args ...any) {
		fmt.Fprintf(os.Stderr, "h3-go-client: "+format+"\n", args...)
		os.Exit(1)
	}
	if *rawURL == "" || *caFile == "" {
		fail("-url and -ca are required")
	}
	if *n < 1 || *concurrency < 1 || *bodySize < 0 {
		fail("-n and -c must be at least 1, -body-size at least 0")
	}
	u, err := url.Parse(*rawURL)
	if err != nil || u.Scheme != "https" || u.Port() == "" {
		fail("-url %q: want https://host:port/path", *rawURL)
	}
	pem, err := os.ReadFile(*caFile)
	if err != nil {
		fail("reading -ca: %v", err)
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		fail("-ca %s holds no PEM certificate", *caFile)
	}

	ctx, cancel := context.WithTimeout(context.Background(), *timeout)
	defer cancel()

	var (
		dials      atomic.Int64
		mu         sync.Mutex
		localAddrs = []string{}
		lastConn   *quic.Conn
		udpConns   []net.PacketConn
	)
	tr := &http3.Transport{
		TLSClientConfig: &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS13},
		QUICConfig: &quic.Config{
			HandshakeIdleTimeout: *handshakeTimeout,
			MaxIdleTimeout:       30 * time.Second,
		},
		DisableCompression: true,
		// Our own dial, to count the connections and to honour -addr.
		Dial: func(ctx context.Context, hostport string, tlsCfg *tls.Config, cfg *quic.Config) (*quic.Conn, error) {
			dials.Add(1)
			target := hostport
			if *addr != "" {
				target = *addr
			}
			raddr, err := net.ResolveUDPAddr("udp4", target)
			if err != nil {
				return nil, err
			}
			pc, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
			if err != nil {
				return nil, err
			}
			conn, err := quic.DialEarly(ctx, pc, raddr, tlsCfg, cfg)
			mu.Lock()
			defer mu.Unlock()
			udpConns = append(udpConns, pc)
			if err != nil {
				return nil, err
			}
			localAddrs = append(localAddrs, pc.LocalAddr().String())
			lastConn = conn
			return conn, nil
		},
	}
	client := &http.Client{Transport: tr}

	out := json.NewEncoder(os.Stdout)
	var outMu sync.Mutex
	var nErrors atomic.Int64
	report := func(i int, format string, args ...any) {
		nErrors.Add(1)
		fmt.Fprintf(os.Stderr, "h3-go-client: request %d: "+format+"\n", append([]any{i}, args...)...)
	}

	one := func(i int) {
		t0 := time.Now()
		var sent []byte
		var reqBody io.Reader
		if *bodySize > 0 {
			sent = body(i, *bodySize)
			reqBody = bytes.NewReader(sent)
		}
		req, err := http.NewRequestWithContext(ctx, *method, *rawURL, reqBody)
		if err != nil {
			report(i, "%v", err)
			return
		}
		if sent != nil {
			req.ContentLength = int64(len(sent))
			req.Header.Set("Content-Type", "application/octet-stream")
		}
		resp, err := client.Do(req)
		if err != nil {
			report(i, "%s %s: %v", *method, *rawURL, err)
			return
		}
		h := sha256.New()
		var head bytes.Buffer
		got, err := io.Copy(io.MultiWriter(h, &limitedWriter{&head, *showBody}), resp.Body)
		resp.Body.Close()
		r := result{
			Type: "response", I: i, Status: resp.StatusCode, Proto: resp.Proto, Len: got,
			SHA256: hex.EncodeToString(h.Sum(nil)), SentLen: len(sent), SentSHA256: hexSum(sent),
			ContentType: resp.Header.Get("Content-Type"), Millis: time.Since(t0).Milliseconds(),
		}
		if got <= int64(*showBody) {
			r.Body = head.String()
		}
		outMu.Lock()
		_ = out.Encode(r)
		outMu.Unlock()
		switch {
		case err != nil:
			report(i, "reading the body after %d bytes: %v", got, err)
		case resp.ProtoMajor != 3:
			report(i, "protocol %q, not HTTP/3", resp.Proto)
		case *expectStatus != 0 && resp.StatusCode != *expectStatus:
			report(i, "status %d, want %d", resp.StatusCode, *expectStatus)
		case *method != http.MethodHead && resp.ContentLength >= 0 && resp.ContentLength != got:
			report(i, "content-length %d but %d body bytes", resp.ContentLength, got)
		}
	}

	start := time.Now()
	next := make(chan int)
	var wg sync.WaitGroup
	for w := 0; w < min(*concurrency, *n); w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range next {
				one(i)
			}
		}()
	}
	for i := 0; i < *n; i++ {
		next <- i
	}
	close(next)
	wg.Wait()
	elapsed := time.Since(start)

	s := summary{Type: "summary", Requests: *n, Errors: int(nErrors.Load()), Connections: dials.Load(),
		LocalAddrs: localAddrs, Millis: elapsed.Milliseconds()}
	mu.Lock()
	if lastConn != nil {
		cs := lastConn.ConnectionState().TLS
		s.RemoteAddr = lastConn.RemoteAddr().String()
		s.ALPN = cs.NegotiatedProtocol
		s.TLSVersion = tls.VersionName(cs.Version)
		s.ServerName = cs.ServerName
		if len(cs.PeerCertificates) > 0 {
			s.PeerCN = cs.PeerCertificates[0].Subject.CommonName
		}
	}
	mu.Unlock()
	_ = out.Encode(s)

	closeErr := tr.Close()
	for _, pc := range udpConns {
		pc.Close()
	}
	if closeErr != nil && !errors.Is(closeErr, net.ErrClosed) {
		fmt.Fprintf(os.Stderr, "h3-go-client: closing the transport: %v\n", closeErr)
	}
	if s.Errors > 0 {
		fmt.Fprintf(os.Stderr, "h3-go-client: %d of %d requests failed\n", s.Errors, *n)
		os.Exit(1)
	}
}

// limitedWriter keeps the first n bytes written to it and drops the rest.
type limitedWriter struct {
	w *bytes.Buffer
	n int
}

func (l *limitedWriter) Write(p []byte) (int, error) {
	if room := l.n - l.w.Len(); room > 0 {
		l.w.Write(p[:min(room, len(p))])
	}
	return len(p), nil
}
