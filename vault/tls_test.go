package vault

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

func mkfifo(t *testing.T, path string) string {
	t.Helper()
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		t.Skipf("mkfifo: %v", err)
	}
	return path
}

// clientWithin calls p.Client(tg) and fails the test if it takes longer
// than d (a FIFO or device read would hang or run away).
func clientWithin(t *testing.T, p *Pool, tg Target, d time.Duration) (*Client, error) {
	t.Helper()
	type result struct {
		c   *Client
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := p.Client(tg)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		return r.c, r.err
	case <-time.After(d):
		t.Fatalf("Client(%+v) still running after %v", tg.TLS, d)
		return nil, nil
	}
}

func totalAlloc() uint64 {
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.TotalAlloc
}

func TestTLSFilesMustBeRegularAndSmall(t *testing.T) {
	p := newPKI(t)
	dir := t.TempDir()
	fifo := mkfifo(t, filepath.Join(dir, "fifo"))
	zeroLink := filepath.Join(dir, "zero.pem")
	if err := os.Symlink("/dev/zero", zeroLink); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "hello.txt")
	if err := os.WriteFile(notPEM, []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}
	big := filepath.Join(dir, "big.pem")
	pemBytes, err := os.ReadFile(p.caFile)
	if err != nil {
		t.Fatal(err)
	}
	// A valid PEM bundle, only too large: refused for its size, not its contents.
	if err := os.WriteFile(big, []byte(strings.Repeat(string(pemBytes), (2<<20)/len(pemBytes)+1)), 0o600); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		tls  config.TLS
		want []string // in the message
	}{
		{"CA /dev/zero", config.TLS{CACert: "/dev/zero"}, []string{"CA file /dev/zero is a character device, not a regular file"}},
		{"CA symlink to /dev/zero", config.TLS{CACert: zeroLink}, []string{"CA file " + zeroLink + " is a character device"}},
		{"CA FIFO without writer", config.TLS{CACert: fifo}, []string{"CA file " + fifo + " is a FIFO, not a regular file"}},
		{"CA a directory", config.TLS{CACert: dir}, []string{"CA file " + dir + " is a directory"}},
		{"CA too large", config.TLS{CACert: big}, []string{"CA file " + big + " is larger than 1 MiB"}},
		{"CA missing", config.TLS{CACert: "/nonexistent/ca.pem"}, []string{"CA file /nonexistent/ca.pem: no such file or directory"}},
		{"CA not PEM", config.TLS{CACert: notPEM}, []string{"CA file " + notPEM + " holds no PEM certificate"}},
		{"client cert /dev/zero", config.TLS{ClientCert: "/dev/zero", ClientKey: p.clientKey}, []string{"client certificate /dev/zero is a character device"}},
		{"client key FIFO", config.TLS{ClientCert: p.clientCert, ClientKey: fifo}, []string{"client key " + fifo + " is a FIFO"}},
		{"client key too large", config.TLS{ClientCert: p.clientCert, ClientKey: big}, []string{"client key " + big + " is larger than 1 MiB"}},
		{"client cert and key swapped", config.TLS{ClientCert: p.clientKey, ClientKey: p.clientCert}, []string{"client certificate " + p.clientKey + " and key " + p.clientCert}},
		{"client cert without key", config.TLS{ClientCert: p.clientCert}, []string{"both client cert and client key"}},
		{"CA directory /dev/zero", config.TLS{CADirectory: "/dev/zero"}, []string{"CA directory /dev/zero is a character device, not a directory"}},
		{"CA directory a FIFO", config.TLS{CADirectory: fifo}, []string{"is a FIFO, not a directory"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			pool := NewPool(Options{})
			before := totalAlloc()
			_, err := clientWithin(t, pool, Target{Address: "https://vault:8200", TLS: tt.tls}, 5*time.Second)
			if grew := totalAlloc() - before; grew > 64<<20 {
				t.Errorf("building the client allocated %d MiB", grew>>20)
			}
			var se *SettingsError
			if !errors.As(err, &se) {
				t.Fatalf("err = %v (%T), want a *SettingsError", err, err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q does not contain %q", err, w)
				}
			}
			if pool.Len() != 0 {
				t.Errorf("a failed client was pooled")
			}
		})
	}
}

func TestTLSCADirectory(t *testing.T) {
	p := newPKI(t)
	srv := newTLSServer(t, p, tls.NoClientCert, "vault")
	caPEM, err := os.ReadFile(p.caFile)
	if err != nil {
		t.Fatal(err)
	}

	good := t.TempDir()
	if err := os.MkdirAll(filepath.Join(good, "sub"), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(good, "sub", "ca.pem"), caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(p.caFile, filepath.Join(good, "link.pem")); err != nil {
		t.Fatal(err)
	}
	c, err := clientWithin(t, NewPool(Options{}), Target{Address: srv.URL, TLS: config.TLS{CADirectory: good}}, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Do(context.Background(), "t", config.Request{Method: "GET", Path: "secret/x"}); err != nil {
		t.Errorf("with the CA in a CA directory: %v", err)
	}

	withFIFO := t.TempDir()
	if err := os.WriteFile(filepath.Join(withFIFO, "a.pem"), caPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	mkfifo(t, filepath.Join(withFIFO, "b.pem"))

	withDevice := t.TempDir()
	if err := os.Symlink("/dev/zero", filepath.Join(withDevice, "zero.pem")); err != nil {
		t.Fatal(err)
	}

	crowded := t.TempDir()
	for i := 0; i <= maxCAEntries; i++ {
		if err := os.WriteFile(filepath.Join(crowded, fmt.Sprintf("%04d.pem", i)), caPEM, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	notPEM := t.TempDir()
	if err := os.WriteFile(filepath.Join(notPEM, "README"), []byte("hello"), 0o600); err != nil {
		t.Fatal(err)
	}

	for _, tt := range []struct {
		name, dir, want string
	}{
		{"a FIFO inside", withFIFO, "b.pem is a FIFO, not a regular file"},
		{"a device inside", withDevice, "zero.pem is a character device"},
		{"too many entries", crowded, fmt.Sprintf("CA directory %s holds more than %d entries", crowded, maxCAEntries)},
		{"a file that is not PEM", notPEM, "README (in CA directory " + notPEM + ") holds no PEM certificate"},
		{"missing", "/nonexistent/cas", "CA directory /nonexistent/cas: no such file or directory"},
		{"a file", p.caFile, "CA directory " + p.caFile + " is of type"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := clientWithin(t, NewPool(Options{}), Target{Address: srv.URL, TLS: config.TLS{CADirectory: tt.dir}}, 5*time.Second)
			var se *SettingsError
			if !errors.As(err, &se) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("err = %v, want a SettingsError containing %q", err, tt.want)
			}
		})
	}
}

// TestTLSSettings checks that the settings mean what they meant with the
// Vault client's ConfigureTLS.
func TestTLSSettings(t *testing.T) {
	p := newPKI(t)
	plain := newTLSServer(t, p, tls.NoClientCert, "vault")
	mtls := newTLSServer(t, p, tls.RequireAnyClientCert, "vault")
	tests := []struct {
		name   string
		srv    *tlsServer
		tls    config.TLS
		ok     bool
		certs  int    // client certificates the server saw
		errSub string // when !ok
	}{
		{name: "CA file", srv: plain, tls: config.TLS{CACert: p.caFile}, ok: true},
		{name: "system roots do not know the test CA", srv: plain, tls: config.TLS{}, errSub: "certificate signed by unknown authority"},
		{name: "skip verify", srv: plain, tls: config.TLS{SkipTLSVerify: true}, ok: true},
		{name: "server name in the certificate", srv: plain, tls: config.TLS{CACert: p.caFile, ServerName: "vault.test"}, ok: true},
		{name: "server name not in the certificate", srv: plain, tls: config.TLS{CACert: p.caFile, ServerName: "other.test"}, errSub: "other.test"},
		{name: "client certificate presented", srv: mtls, tls: config.TLS{CACert: p.caFile, ClientCert: p.clientCert, ClientKey: p.clientKey}, ok: true, certs: 1},
		{name: "no client certificate", srv: mtls, tls: config.TLS{CACert: p.caFile}, errSub: "cannot reach Vault"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, Options{MaxRetries: 0}, Target{Address: tt.srv.URL, TLS: tt.tls})
			n := len(tt.srv.requests())
			_, err := c.Do(context.Background(), "t", config.Request{Method: "GET", Path: "secret/x"})
			if tt.ok {
				if err != nil {
					t.Fatal(err)
				}
				if got := tt.srv.requests()[n:]; len(got) != 1 || got[0] != tt.certs {
					t.Errorf("server saw requests with %v client certificates, want [%d]", got, tt.certs)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.errSub) {
				t.Errorf("err = %v, want one containing %q", err, tt.errSub)
			}
		})
	}
}
