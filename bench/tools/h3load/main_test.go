package main

import (
	"bytes"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/quic-go/quic-go/http3"
)

// pki: a throw-away CA (written to a PEM file) and a server certificate for 127.0.0.1 signed by it.
func pki(t *testing.T) (caFile string, cert tls.Certificate) {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "h3load test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: pkix.Name{CommonName: "localhost"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.IPv4(127, 0, 0, 1)}, DNSNames: []string{"localhost"},
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &key.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	caFile = filepath.Join(t.TempDir(), "ca.pem")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: caDER}), 0o600); err != nil {
		t.Fatal(err)
	}
	return caFile, tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
}

// how a test server gets things wrong
type fault int

const (
	right fault = iota
	wrongBody
	wrongType
	status500
	corruptEcho
)

// h3Server: /plaintext and POST /echo over HTTP/3 (quic-go's server) on 127.0.0.1, with the given fault.
func h3Server(t *testing.T, cert tls.Certificate, f fault) (base string) {
	t.Helper()
	mux := http.NewServeMux()
	mux.HandleFunc("/plaintext", func(w http.ResponseWriter, r *http.Request) {
		switch f {
		case wrongType:
			w.Header().Set("Content-Type", "application/json")
		default:
			w.Header().Set("Content-Type", "text/plain; charset=utf-8")
		}
		if f == status500 {
			w.WriteHeader(500)
		}
		if f == wrongBody {
			io.WriteString(w, "Hello, World")
			return
		}
		io.WriteString(w, "Hello, World!")
	})
	mux.HandleFunc("POST /echo", func(w http.ResponseWriter, r *http.Request) {
		b, err := io.ReadAll(r.Body)
		if err != nil {
			w.WriteHeader(400)
			return
		}
		if f == corruptEcho && len(b) > 1000 {
			b[1000] ^= 1
		}
		w.Header().Set("Content-Type", r.Header.Get("Content-Type"))
		w.Write(b)
	})
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http3.Server{Handler: mux, TLSConfig: http3.ConfigureTLSConfig(&tls.Config{Certificates: []tls.Certificate{cert}})}
	go srv.Serve(pc)
	t.Cleanup(func() { srv.Close(); pc.Close() })
	return fmt.Sprintf("https://%s", pc.LocalAddr())
}

func reset() { resetFirstErr() }

func plainCfg(base, ca string) *config {
	return &config{url: base + "/plaintext", ca: ca, method: "GET", expectBody: "Hello, World!", hasExpectBody: true,
		expectType: "text/plain", timeout: 5 * time.Second, handshakeTimeout: 2 * time.Second}
}

func echoCfg(base, ca string, size int) *config {
	return &config{url: base + "/echo", ca: ca, method: "POST", bodySize: size, expectEcho: true,
		expectType: "application/octet-stream", timeout: 5 * time.Second, handshakeTimeout: 2 * time.Second}
}

func TestPayloadAndPercentiles(t *testing.T) {
	a, b := payload(4096), payload(4096)
	if !bytes.Equal(a, b) || bytes.Equal(a[:2048], a[2048:]) {
		t.Fatal("the payload is not the same on every run, or repeats")
	}
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
	if !sameMediaType("text/plain; charset=utf-8", "text/plain") || sameMediaType("text/html", "text/plain") {
		t.Fatal("sameMediaType")
	}
}

func TestCheckPassesARightServer(t *testing.T) {
	ca, cert := pki(t)
	base := h3Server(t, cert, right)
	for _, cfg := range []*config{plainCfg(base, ca), echoCfg(base, ca, 1<<20)} {
		reset()
		cfg.check, cfg.n = true, 4
		res := &result{}
		if code := runCheck(cfg, res); code != 0 || res.Errors.total() != 0 {
			t.Fatalf("%s: code %d, %+v (%s)", cfg.url, code, res.Errors, takeFirstErr())
		}
		if res.Requests != 4 || res.Dials != 1 || res.Protocol != "HTTP/3.0" || res.TLS.ALPN != "h3" ||
			res.TLS.Version != "TLS 1.3" {
			t.Fatalf("%s: %+v %+v", cfg.url, res, res.TLS)
		}
		if cfg.bodySize > 0 && (res.BytesRead != 4<<20 || res.BytesSent != 4<<20) {
			t.Fatalf("echo bytes %d read, %d sent", res.BytesRead, res.BytesSent)
		}
	}
}

func TestCheckCatchesWrongServers(t *testing.T) {
	ca, cert := pki(t)
	for _, tc := range []struct {
		f    fault
		echo bool
		want string
	}{
		{wrongBody, false, `body "Hello, World", want "Hello, World!"`},
		{wrongType, false, `Content-Type "application/json", want text/plain`},
		{status500, false, "status 500"},
		{corruptEcho, true, "the echo differs from the 65536 bytes sent (65536 bytes back, first difference at byte 1000)"},
	} {
		reset()
		base := h3Server(t, cert, tc.f)
		cfg := plainCfg(base, ca)
		if tc.echo {
			cfg = echoCfg(base, ca, 65536)
		}
		cfg.check, cfg.n = true, 3
		res := &result{}
		runCheck(cfg, res)
		if res.Errors.total() != 3 || !strings.Contains(takeFirstErr(), tc.want) {
			t.Fatalf("fault %d: %+v, first error %q (want %q)", tc.f, res.Errors, takeFirstErr(), tc.want)
		}
	}
}

func TestCheckRefusesAnUntrustedCertificate(t *testing.T) {
	reset()
	_, cert := pki(t)
	otherCA, _ := pki(t)
	base := h3Server(t, cert, right)
	cfg := plainCfg(base, otherCA)
	cfg.check, cfg.n = true, 1
	res := &result{}
	if code := runCheck(cfg, res); code != 1 || res.Errors.Connect != 1 ||
		!strings.Contains(res.Reason, "certificate signed by unknown authority") {
		t.Fatalf("code %d, %+v: %s", code, res.Errors, res.Reason)
	}
}

func TestLoadShort(t *testing.T) {
	ca, cert := pki(t)
	base := h3Server(t, cert, right)
	for _, cfg := range []*config{plainCfg(base, ca), echoCfg(base, ca, 20_000)} {
		reset()
		cfg.conns, cfg.streams = 3, 4
		cfg.warmup, cfg.duration = 50*time.Millisecond, 400*time.Millisecond
		res := &result{}
		if code := runLoad(cfg, res); code != 0 {
			t.Fatalf("runLoad exited %d: %s", code, res.Reason)
		}
		if res.Requests == 0 || res.RequestsPerSec <= 0 || res.Errors.total() != 0 || res.LatencyMs["99"] <= 0 ||
			res.Dials != 3 || res.Status["2xx"] != res.Requests || res.Protocol != "HTTP/3.0" {
			t.Fatalf("%s: %+v (%s)", cfg.url, res, takeFirstErr())
		}
		if res.BytesRead != res.Requests*int64(max(13, cfg.bodySize)) {
			t.Fatalf("%d bytes read for %d requests", res.BytesRead, res.Requests)
		}
	}
}

func TestLoadFixedCount(t *testing.T) {
	reset()
	ca, cert := pki(t)
	base := h3Server(t, cert, right)
	cfg := plainCfg(base, ca)
	cfg.conns, cfg.streams, cfg.n, cfg.warmup = 2, 5, 137, 20*time.Millisecond
	res := &result{}
	if code := runLoad(cfg, res); code != 0 || res.Requests != 137 || res.Errors.total() != 0 {
		t.Fatalf("code %d: %+v (%s)", code, res, takeFirstErr())
	}
}

func TestLoadCountsWrongResponsesAsErrors(t *testing.T) {
	reset()
	ca, cert := pki(t)
	base := h3Server(t, cert, wrongBody)
	cfg := plainCfg(base, ca)
	cfg.conns, cfg.streams, cfg.n = 1, 2, 20
	res := &result{}
	if code := runLoad(cfg, res); code != 0 || res.Requests != 0 || res.Errors.Body != 20 || res.Status["2xx"] != 20 {
		t.Fatalf("code %d: %+v", code, res)
	}
}

func TestNoServer(t *testing.T) {
	reset()
	ca, _ := pki(t)
	pc, _ := net.ListenPacket("udp", "127.0.0.1:0") // a UDP port nobody answers on
	defer pc.Close()
	cfg := plainCfg("https://"+pc.LocalAddr().String(), ca)
	cfg.conns, cfg.streams, cfg.handshakeTimeout = 2, 1, 300*time.Millisecond
	res := &result{}
	if code := runLoad(cfg, res); code != 2 || res.Errors.Connect != 1 || !strings.Contains(res.Reason, "connection") {
		t.Fatalf("code %d, %+v: %s", code, res.Errors, res.Reason)
	}
}
