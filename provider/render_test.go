package provider

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

func kvV2(data map[string]any) map[string]any {
	var inner any
	if data != nil {
		inner = data
	}
	return map[string]any{
		"data": inner,
		"metadata": map[string]any{
			"version":       json.Number("3"),
			"created_time":  "2024-01-01T00:00:00Z",
			"deletion_time": "",
			"destroyed":     false,
		},
	}
}

func TestRenderKey(t *testing.T) {
	tests := []struct {
		name string
		data map[string]any
		key  string
		want string
	}{
		{
			name: "KV v2 reads data.data",
			data: kvV2(map[string]any{"username": "u", "password": "p"}),
			key:  "password",
			want: "p",
		},
		{
			name: "KV v2 key named data",
			data: kvV2(map[string]any{"data": "inner-data"}),
			key:  "data",
			want: "inner-data",
		},
		{
			name: "KV v1 key named data does not hide siblings",
			data: map[string]any{"data": "d", "other": "o"},
			key:  "other",
			want: "o",
		},
		{
			name: "KV v1 key named data is readable",
			data: map[string]any{"data": "d", "other": "o"},
			key:  "data",
			want: "d",
		},
		{
			name: "KV v1 map named data does not hide siblings",
			data: map[string]any{"data": map[string]any{"x": "inner"}, "user": "u"},
			key:  "user",
			want: "u",
		},
		{
			name: "KV v1 with data and metadata siblings but no KV v2 bookkeeping",
			data: map[string]any{"data": map[string]any{"x": "inner"}, "metadata": map[string]any{"owner": "me"}},
			key:  "metadata",
			want: `{"owner":"me"}`,
		},
		{
			name: "fallback to nested data.data",
			data: map[string]any{"data": map[string]any{"certificate": "CERT"}},
			key:  "certificate",
			want: "CERT",
		},
		{
			name: "fallback to nested data.data beside siblings",
			data: map[string]any{"data": map[string]any{"x": "inner"}, "user": "u"},
			key:  "x",
			want: "inner",
		},
		{
			name: "top-level wins over nested",
			data: map[string]any{"data": map[string]any{"x": "inner"}, "x": "outer"},
			key:  "x",
			want: "outer",
		},
		{
			name: "json.Number stays as written",
			data: map[string]any{"port": json.Number("5432")},
			key:  "port",
			want: "5432",
		},
		{
			name: "large json.Number keeps precision",
			data: map[string]any{"n": json.Number("12345678901234567890")},
			key:  "n",
			want: "12345678901234567890",
		},
		{
			name: "bool",
			data: map[string]any{"b": true},
			key:  "b",
			want: "true",
		},
		{
			name: "null",
			data: map[string]any{"n": nil},
			key:  "n",
			want: "null",
		},
		{
			name: "map as JSON",
			data: map[string]any{"m": map[string]any{"b": json.Number("2"), "a": "x"}},
			key:  "m",
			want: `{"a":"x","b":2}`,
		},
		{
			name: "list as JSON",
			data: map[string]any{"l": []any{"a", json.Number("1")}},
			key:  "l",
			want: `["a",1]`,
		},
		{
			name: "KV v2 non-string value",
			data: kvV2(map[string]any{"port": json.Number("5432")}),
			key:  "port",
			want: "5432",
		},
		{
			name: "string kept byte for byte",
			data: map[string]any{"s": "  line1\nline2\n"},
			key:  "s",
			want: "  line1\nline2\n",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := &config.Object{ObjectName: "f", SecretKey: tt.key}
			got, err := render(obj, "secret/x", &api.Secret{Data: tt.data})
			if err != nil {
				t.Fatalf("render: %v", err)
			}
			if string(got) != tt.want {
				t.Errorf("render = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestRenderKeyNotFound(t *testing.T) {
	tests := []struct {
		name        string
		data        map[string]any
		key         string
		wantPresent []string
		wantMsg     []string
	}{
		{
			name:        "KV v2 lists inner keys",
			data:        kvV2(map[string]any{"username": "u", "password": "p"}),
			key:         "pasword",
			wantPresent: []string{"password", "username"},
			wantMsg:     []string{`object "db/pass"`, `key "pasword"`, "secret/data/db", "keys present: password, username"},
		},
		{
			name:        "KV v2 metadata is not a key",
			data:        kvV2(map[string]any{"a": "1"}),
			key:         "metadata",
			wantPresent: []string{"a"},
		},
		{
			name:        "deleted KV v2 version",
			data:        kvV2(nil),
			key:         "username",
			wantPresent: []string{},
			wantMsg:     []string{"the secret has no keys"},
		},
		{
			name:        "KV v1 lists top-level keys",
			data:        map[string]any{"b": "1", "a": "2"},
			key:         "c",
			wantPresent: []string{"a", "b"},
			wantMsg:     []string{"keys present: a, b"},
		},
		{
			name:        "nil data",
			data:        nil,
			key:         "c",
			wantPresent: []string{},
			wantMsg:     []string{"the secret has no keys"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := &config.Object{ObjectName: "db/pass", SecretKey: tt.key}
			_, err := render(obj, "secret/data/db", &api.Secret{Data: tt.data})
			var ke *KeyNotFoundError
			if !errors.As(err, &ke) {
				t.Fatalf("err = %v (%T), want *KeyNotFoundError", err, err)
			}
			if ke.Object != "db/pass" || ke.Path != "secret/data/db" || ke.Key != tt.key {
				t.Errorf("KeyNotFoundError = %+v", ke)
			}
			if !reflect.DeepEqual(ke.Present, tt.wantPresent) {
				t.Errorf("Present = %#v, want %#v", ke.Present, tt.wantPresent)
			}
			for _, w := range tt.wantMsg {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("message %q does not contain %q", err, w)
				}
			}
		})
	}
}

func TestRenderKeyNotFoundDoesNotLeakValues(t *testing.T) {
	obj := &config.Object{ObjectName: "f", SecretKey: "nope"}
	_, err := render(obj, "secret/data/db", &api.Secret{Data: kvV2(map[string]any{"password": "hunter2"})})
	if err == nil {
		t.Fatal("want error")
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Errorf("message %q contains a secret value", err)
	}
}

func TestKVV2Data(t *testing.T) {
	md := map[string]any{"version": json.Number("1"), "created_time": "t"}
	tests := []struct {
		name   string
		data   map[string]any
		wantOK bool
		want   map[string]any
	}{
		{"KV v2", map[string]any{"data": map[string]any{"a": "1"}, "metadata": md}, true, map[string]any{"a": "1"}},
		{"deleted", map[string]any{"data": nil, "metadata": md}, true, map[string]any{}},
		{"extra key", map[string]any{"data": map[string]any{}, "metadata": md, "x": 1}, false, nil},
		{"no metadata", map[string]any{"data": map[string]any{}, "x": md}, false, nil},
		{"metadata not a map", map[string]any{"data": map[string]any{}, "metadata": "m"}, false, nil},
		{"metadata without version", map[string]any{"data": map[string]any{}, "metadata": map[string]any{"created_time": "t"}}, false, nil},
		{"metadata without created_time", map[string]any{"data": map[string]any{}, "metadata": map[string]any{"version": 1}}, false, nil},
		{"data a string", map[string]any{"data": "s", "metadata": md}, false, nil},
		{"empty", map[string]any{}, false, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := kvV2Data(tt.data)
			if ok != tt.wantOK {
				t.Fatalf("ok = %v, want %v", ok, tt.wantOK)
			}
			if ok && !reflect.DeepEqual(got, tt.want) {
				t.Errorf("inner = %#v, want %#v", got, tt.want)
			}
		})
	}
}

func TestLookupKeyDirect(t *testing.T) {
	v, err := lookupKey(map[string]any{"data": "d", "k": json.Number("7")}, "k")
	if err != nil || v != json.Number("7") {
		t.Fatalf("lookupKey = %v, %v", v, err)
	}
}

func TestRenderWholeResponse(t *testing.T) {
	s := &api.Secret{
		RequestID:     "req-0123456789",
		LeaseID:       "database/creds/r/lease-abc",
		LeaseDuration: 3600,
		Renewable:     true,
		Data:          map[string]any{"username": "u", "port": json.Number("5432")},
		Warnings:      []string{"w"},
	}
	obj := &config.Object{ObjectName: "whole"}
	got, err := render(obj, "database/creds/r", s)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(got), "req-0123456789") {
		t.Errorf("whole response %s contains the request_id", got)
	}
	if s.RequestID != "req-0123456789" {
		t.Errorf("render modified the response's RequestID to %q", s.RequestID)
	}
	var back map[string]any
	dec := json.NewDecoder(strings.NewReader(string(got)))
	dec.UseNumber()
	if err := dec.Decode(&back); err != nil {
		t.Fatalf("whole response %s is not JSON: %v", got, err)
	}
	if back["lease_id"] != "database/creds/r/lease-abc" {
		t.Errorf("lease_id = %v", back["lease_id"])
	}
	if back["lease_duration"] != json.Number("3600") || back["renewable"] != true {
		t.Errorf("lease_duration/renewable = %v/%v", back["lease_duration"], back["renewable"])
	}
	if rid, ok := back["request_id"]; ok && rid != "" {
		t.Errorf("request_id = %v, want empty", rid)
	}
	data, _ := back["data"].(map[string]any)
	if data["username"] != "u" || data["port"] != json.Number("5432") {
		t.Errorf("data = %v", back["data"])
	}
	if !strings.Contains(string(got), `"port":5432`) {
		t.Errorf("number not written as sent: %s", got)
	}

	// Two reads differing only in request_id render identically.
	s2 := *s
	s2.RequestID = "req-other"
	got2, err := render(obj, "database/creds/r", &s2)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != string(got2) {
		t.Errorf("renders differ by request_id:\n%s\n%s", got, got2)
	}
}

func TestRenderDecode(t *testing.T) {
	tests := []struct {
		name     string
		encoding string
		value    string
		want     string
		wantErr  bool
	}{
		{name: "utf-8 as is", encoding: "", value: "aGVsbG8=", want: "aGVsbG8="},
		{name: "base64", encoding: config.EncodingBase64, value: "aGVsbG8=", want: "hello"},
		{name: "base64 with whitespace", encoding: config.EncodingBase64, value: " aGVsbG8=\n", want: "hello"},
		{name: "base64 binary", encoding: config.EncodingBase64, value: "AP8=", want: "\x00\xff"},
		{name: "base64 invalid", encoding: config.EncodingBase64, value: "not base64!", wantErr: true},
		{name: "base64 url alphabet refused", encoding: config.EncodingBase64, value: "_-8=", wantErr: true},
		{name: "hex", encoding: config.EncodingHex, value: "68656c6c6f", want: "hello"},
		{name: "hex upper with newline", encoding: config.EncodingHex, value: "68656C6C6F\n", want: "hello"},
		{name: "hex odd length", encoding: config.EncodingHex, value: "686", wantErr: true},
		{name: "hex invalid", encoding: config.EncodingHex, value: "s3cr3tZZ", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			obj := &config.Object{ObjectName: "f", SecretKey: "k", Encoding: tt.encoding}
			got, err := render(obj, "p", &api.Secret{Data: map[string]any{"k": tt.value}})
			if tt.wantErr {
				var de *DecodeError
				if !errors.As(err, &de) {
					t.Fatalf("err = %v (%T), want *DecodeError", err, err)
				}
				if de.Object != "f" || de.Encoding != tt.encoding {
					t.Errorf("DecodeError = %+v", de)
				}
				if !strings.Contains(err.Error(), `object "f"`) || !strings.Contains(err.Error(), tt.encoding) {
					t.Errorf("message %q does not name the object and encoding", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != tt.want {
				t.Errorf("render = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestDecodeHexErrorDoesNotQuoteSecret(t *testing.T) {
	for _, secret := range []string{"s3cr3t", "abcdeX", "00zz"} {
		obj := &config.Object{ObjectName: "f", Encoding: config.EncodingHex}
		_, err := decode(obj, []byte(secret))
		if err == nil {
			t.Fatalf("decode(%q) succeeded", secret)
		}
		msg := err.Error()
		for _, leak := range []string{"U+", "'s'", "'X'", "'z'", secret} {
			if strings.Contains(msg, leak) {
				t.Errorf("hex error %q quotes the secret (%q)", msg, leak)
			}
		}
	}
}

func TestDecodeUnknownEncoding(t *testing.T) {
	obj := &config.Object{ObjectName: "f", Encoding: "rot13"}
	if _, err := decode(obj, []byte("x")); err == nil || !strings.Contains(err.Error(), "rot13") {
		t.Fatalf("err = %v, want unknown encoding", err)
	}
}

func TestRenderWholeResponseDecoded(t *testing.T) {
	// Without secretKey the whole response is JSON, which is not base64:
	// an encoding on it fails rather than writing garbage.
	obj := &config.Object{ObjectName: "f", Encoding: config.EncodingBase64}
	_, err := render(obj, "p", &api.Secret{Data: map[string]any{"a": "b"}})
	var de *DecodeError
	if !errors.As(err, &de) {
		t.Fatalf("err = %v, want *DecodeError", err)
	}
}
