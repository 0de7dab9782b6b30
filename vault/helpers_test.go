package vault

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"io"
	"log"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

// last is the latest request v received.
func last(t *testing.T, v *vaulttest.Server) vaulttest.Call {
	t.Helper()
	calls := v.Calls()
	if len(calls) == 0 {
		t.Fatal("Vault received no request")
	}
	return calls[len(calls)-1]
}

func newClient(t *testing.T, opts Options, tg Target) *Client {
	t.Helper()
	c, err := NewPool(opts).Client(tg)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// pki is a CA with a server certificate for 127.0.0.1 and a client
// certificate, the CA and client files written to a temporary directory.
type pki struct {
	caFile, clientCert, clientKey string
	server                        tls.Certificate
	caPool                        *x509.CertPool
}

func newPKI(t *testing.T) *pki {
	t.Helper()
	dir := t.TempDir()
	caKey := newKey(t)
	caTmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "test CA"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		IsCA:                  true,
		KeyUsage:              x509.KeyUsageCertSign,
		BasicConstraintsValid: true,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTmpl, caTmpl, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, tmpl *x509.Certificate) ([]byte, *ecdsa.PrivateKey) {
		k := newKey(t)
		tmpl.SerialNumber = big.NewInt(serial)
		tmpl.NotBefore, tmpl.NotAfter = time.Now().Add(-time.Hour), time.Now().Add(time.Hour)
		der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, &k.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return der, k
	}
	srvDER, srvKey := issue(2, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "vault"},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")},
		DNSNames:    []string{"vault.test"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
	})
	cliDER, cliKey := issue(3, &x509.Certificate{
		Subject:     pkix.Name{CommonName: "operator"},
		ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
	})
	p := &pki{
		caFile:     writePEM(t, dir, "ca.pem", "CERTIFICATE", caDER),
		clientCert: writePEM(t, dir, "tls.crt", "CERTIFICATE", cliDER),
		clientKey:  writePEM(t, dir, "tls.key", "EC PRIVATE KEY", marshalKey(t, cliKey)),
		server:     tls.Certificate{Certificate: [][]byte{srvDER}, PrivateKey: srvKey},
		caPool:     x509.NewCertPool(),
	}
	p.caPool.AddCert(ca)
	return p
}

func newKey(t *testing.T) *ecdsa.PrivateKey {
	k, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func marshalKey(t *testing.T, k *ecdsa.PrivateKey) []byte {
	b, err := x509.MarshalECPrivateKey(k)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func writePEM(t *testing.T, dir, name, typ string, der []byte) string {
	t.Helper()
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, pem.EncodeToMemory(&pem.Block{Type: typ, Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

// tlsServer is an https server with p's certificate that answers every
// request with a KV answer naming name, and records the client certificates
// each request came with. clientAuth says whether it asks for them.
type tlsServer struct {
	*httptest.Server
	mu    sync.Mutex
	certs []int // client certificates presented, per request
}

func newTLSServer(t *testing.T, p *pki, clientAuth tls.ClientAuthType, name string) *tlsServer {
	t.Helper()
	s := &tlsServer{}
	s.Server = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.certs = append(s.certs, len(r.TLS.PeerCertificates))
		s.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"data":{"server":%q}}`, name)
	}))
	s.TLS = &tls.Config{Certificates: []tls.Certificate{p.server}, ClientAuth: clientAuth, MinVersion: tls.VersionTLS12}
	s.Config.ErrorLog = log.New(io.Discard, "", 0) // refused handshakes are expected
	s.StartTLS()
	t.Cleanup(s.Close)
	return s
}

// requests is the client certificates presented with each request so far.
func (s *tlsServer) requests() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.certs...)
}

// socketPath is a path for a Unix socket in a new temporary directory:
// short enough for a socket address, and free of the commas a test's name
// may put in t.TempDir() (vaultAddress lists are comma-separated).
func socketPath(t *testing.T) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "vs")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	return filepath.Join(dir, "agent.sock")
}
