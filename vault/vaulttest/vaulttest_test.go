package vaulttest_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

func TestOnSocket(t *testing.T) {
	sock := filepath.Join(t.TempDir(), "agent.sock")
	s := vaulttest.New(t, vaulttest.OnSocket(sock), vaulttest.AnyToken())
	s.PutKV("secret/x", map[string]any{"k": "v"})
	if s.URL() != "unix://"+sock || s.Addr() != sock {
		t.Errorf("URL %q Addr %q, want unix://%s and %s", s.URL(), s.Addr(), sock, sock)
	}
	hc := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, "unix", sock)
	}}}
	req, _ := http.NewRequest("GET", "http://localhost/v1/secret/x", nil)
	req.Header.Set("X-Vault-Token", "t")
	resp, err := hc.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `"k":"v"`) {
		t.Errorf("GET over the socket: %d %s", resp.StatusCode, body)
	}
	if n := s.Count("GET", "secret/x"); n != 1 {
		t.Errorf("the server counted %d reads, want 1", n)
	}
	hc.CloseIdleConnections()
	s.Close()
	if _, err := os.Stat(sock); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("socket after Close: %v, want it removed", err)
	}
}
