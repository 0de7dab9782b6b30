package vaulttest

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// kvV1TTL is the lease_duration KV v1 answers carry (a refresh hint, with
// no lease_id), as Vault's default.
const kvV1TTL = 768 * time.Hour

type kvVersion struct {
	data    json.RawMessage
	created time.Time
}

// PutKV stores a KV version 1 secret the server serves at GET path. data
// is encoded to JSON now: later changes to it do not show.
func (s *Server) PutKV(path string, data map[string]any) {
	s.t.Helper()
	b := s.encode(path, data)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kv1[strings.Trim(path, "/")] = b
}

// PutKV2 stores data as the next version of a KV version 2 secret, given
// by its read path "<mount>/data/<name>" (as in secretPath), and returns
// the version number (1 for the first). The server answers GET
// <mount>/data/<name> with the latest version, ?version=N with version N,
// and GET <mount>/metadata/<name> with the versions' metadata.
func (s *Server) PutKV2(path string, data map[string]any) int {
	s.t.Helper()
	path = strings.Trim(path, "/")
	mount, name, ok := strings.Cut(path, "/data/")
	if !ok || mount == "" || name == "" {
		s.t.Fatalf("vaulttest: PutKV2(%q): want a KV v2 read path, <mount>/data/<name>", path)
	}
	b := s.encode(path, data)
	now := s.clock.Now()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.kv2Mounts[mount] = true
	s.kv2[path] = append(s.kv2[path], kvVersion{data: b, created: now})
	return len(s.kv2[path])
}

func (s *Server) encode(path string, data map[string]any) json.RawMessage {
	s.t.Helper()
	if data == nil {
		data = map[string]any{}
	}
	b, err := json.Marshal(data)
	if err != nil {
		s.t.Fatalf("vaulttest: secret %s is no JSON: %v", path, err)
	}
	return b
}

// readKV answers a read of a stored secret and reports whether path is
// one.
func (s *Server) readKV(w *replier, r *http.Request, path string) bool {
	s.mu.Lock()
	v1, isV1 := s.kv1[path]
	var (
		mount, rest string
		versions    []kvVersion
		isV2, meta  bool
	)
	for m := range s.kv2Mounts {
		if name, ok := strings.CutPrefix(path, m+"/data/"); ok {
			mount, rest, isV2 = m, name, true
		} else if name, ok := strings.CutPrefix(path, m+"/metadata/"); ok {
			mount, rest, isV2, meta = m, name, true, true
		}
	}
	if isV2 {
		versions = append(versions, s.kv2[mount+"/data/"+rest]...)
	}
	s.mu.Unlock()

	switch {
	case !isV1 && (!isV2 || len(versions) == 0):
		return false
	case r.Method != http.MethodGet:
		w.fail(http.StatusMethodNotAllowed, "vaulttest: only reads of stored secrets are supported")
	case isV1:
		w.secret(map[string]any{"lease_duration": seconds(kvV1TTL), "data": v1})
	case meta:
		w.secret(map[string]any{"data": kvMetadata(versions)})
	default:
		n := len(versions)
		if q := r.URL.Query().Get("version"); q != "" && q != "0" {
			var err error
			if n, err = strconv.Atoi(q); err != nil {
				w.fail(http.StatusBadRequest, "error parsing version: "+err.Error())
				return true
			}
		}
		if n < 1 || n > len(versions) {
			w.fail(http.StatusNotFound)
			return true
		}
		v := versions[n-1]
		w.secret(map[string]any{"data": map[string]any{
			"data":     v.data,
			"metadata": versionMetadata(v, n),
		}})
	}
	return true
}

func versionMetadata(v kvVersion, n int) map[string]any {
	return map[string]any{
		"created_time":    v.created.Format(time.RFC3339Nano),
		"custom_metadata": nil,
		"deletion_time":   "",
		"destroyed":       false,
		"version":         n,
	}
}

func kvMetadata(versions []kvVersion) map[string]any {
	vs := map[string]any{}
	for i, v := range versions {
		m := versionMetadata(v, i+1)
		delete(m, "custom_metadata")
		delete(m, "version")
		vs[strconv.Itoa(i+1)] = m
	}
	return map[string]any{
		"current_version": len(versions),
		"oldest_version":  1,
		"created_time":    versions[0].created.Format(time.RFC3339Nano),
		"updated_time":    versions[len(versions)-1].created.Format(time.RFC3339Nano),
		"max_versions":    0,
		"versions":        vs,
	}
}
