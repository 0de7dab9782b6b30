package vault

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"

	"github.com/hashicorp/vault/api"
)

// Answers as Vault sends them, which the fast path must take itself.
var vaultAnswers = []string{
	// KV v2 read
	`{"request_id":"5d1c8a2e-1f3b-4c6e-9a0d-2b7f8e9c1a34","lease_id":"","renewable":false,"lease_duration":0,"data":{"data":{"password":"s3cr3t","port":5432,"ratio":0.5,"tags":["a","b"],"nested":{"x":true,"y":null}},"metadata":{"created_time":"2024-05-01T10:00:00.123456Z","custom_metadata":null,"deletion_time":"","destroyed":false,"version":3}},"wrap_info":null,"warnings":null,"auth":null,"mount_type":"kv"}` + "\n",
	// KV v1 read
	`{"request_id":"r","lease_id":"","renewable":false,"lease_duration":2764800,"data":{"k":"v"},"wrap_info":null,"warnings":null,"auth":null,"mount_type":"kv"}`,
	// database credentials
	`{"request_id":"r","lease_id":"database/creds/app/AbC123","renewable":true,"lease_duration":3600,"data":{"password":"A1a-xyz","username":"v-jwt-app-xyz"},"wrap_info":null,"warnings":null,"auth":null,"mount_type":"database"}`,
	// PKI certificate: PEM with \n escapes
	`{"request_id":"r","lease_id":"","renewable":false,"lease_duration":0,"data":{"certificate":"-----BEGIN CERTIFICATE-----\nMIIB\/abc+\n-----END CERTIFICATE-----","expiration":1767225600,"issuing_ca":"-----BEGIN CERTIFICATE-----\nMIIC\n-----END CERTIFICATE-----","serial_number":"1a:2b","ca_chain":["x"],"private_key_type":"ec"},"wrap_info":null,"warnings":["TTL capped \"24h\""],"auth":null,"mount_type":"pki"}`,
	// UTF-8 values, whitespace
	" {\n  \"data\" : { \"name\" : \"Grüße, 世界\", \"empty\": \"\", \"e\": 1.5e-3, \"neg\": -0 } ,\n \"warnings\": [] }\t",
}

// reference is parseSecret as it was: encoding/json with UseNumber, and
// api.ParseSecret for answers without the envelope.
func reference(body []byte) (*api.Secret, error) {
	var s api.Secret
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	if err := dec.Decode(&s); err != nil {
		return nil, err
	}
	if reflect.DeepEqual(s, api.Secret{}) {
		return api.ParseSecret(bytes.NewReader(body))
	}
	return &s, nil
}

func TestFastSecretTakesVaultAnswers(t *testing.T) {
	for _, b := range vaultAnswers {
		got, ok := fastSecret([]byte(b))
		if !ok {
			t.Errorf("the fast path left a plain Vault answer to encoding/json: %s", b)
			continue
		}
		want, err := reference([]byte(b))
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %#v\nwant %#v", b, got, want)
		}
	}
}

// parseSecret is api.ParseSecret: the same Secret, the same errors, for
// answers the fast path takes and those it leaves.
func TestParseSecretIsAPIParseSecret(t *testing.T) {
	bodies := append([]string{
		`{"auth":{"client_token":"t","accessor":"a","lease_duration":60,"renewable":true,"policies":["x"]}}`,
		`{"data":{}}`,
		`{"warnings":[]}`,
		`{"keys":["a","b"],"n":1}`,
		`{"errors":[]}`,
		`{"errors":["boom","again"],"other":1}`,
		`{"data":{"k":"v"}} trailing`,
		`{"Data":{"k":"v"}}`,
		`{"data":{"k":"v"},"data":{"j":"w"}}`,
		`{"data":{"k":"v","k":"w"}}`,
		`{"data":{"k":"\u00e9\ud83d\ude00\ud800"}}`,
		"{\"data\":{\"k\":\"\xff\xfe\"}}",
		`{"data":{"k":"a\qb"}}`,
		`{"data":"string"}`,
		`{"lease_duration":1.5,"data":{}}`,
		`{"lease_duration":99999999999999999999,"data":{}}`,
		`{"lease_duration":"5","data":{}}`,
		`{"renewable":"true","data":{}}`,
		`{"data":{"n":01}}`,
		`{"data":{"n":1.}}`,
		`{"data":{"n":-}}`,
		`{"data":{"n":1e}}`,
		`{"data":{"a":[1,2,]}}`,
		`{"data":{"a":{"b":{"c":{"d":[[[[{}]]]]}}}}}`,
		"{\"data\":{\"ctl\":\"a\tb\"}}",
		`{"wrap_info":null,"auth":null}`,
		`{"wrap_info":{"token":"t","ttl":60}}`,
		`{}`,
		`null`,
		`{"data":`,
		`[1,2]`,
		`{"request_id":null,"data":null,"warnings":null,"renewable":null,"lease_duration":null,"mount_type":"x"}`,
		strings.Repeat(`{"data":`, 70) + `{}` + strings.Repeat(`}`, 70),
		`{"data":` + strings.Repeat(`[`, 70) + strings.Repeat(`]`, 70) + `}`,
	}, vaultAnswers...)
	for _, b := range bodies {
		checkParseSecret(t, []byte(b))
	}
}

func checkParseSecret(t *testing.T, b []byte) {
	t.Helper()
	got, gotErr := parseSecret(b)
	want, wantErr := reference(b)
	if (gotErr == nil) != (wantErr == nil) || (gotErr != nil && gotErr.Error() != wantErr.Error()) {
		t.Fatalf("%q: error %v, encoding/json %v", b, gotErr, wantErr)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("%q:\n got %#v\nwant %#v", b, got, want)
	}
	if len(bytes.TrimSpace(b)) == 0 {
		return // send answers EmptyResponseError without decoding
	}
	if wantAPI, err := api.ParseSecret(bytes.NewReader(b)); (err == nil) != (gotErr == nil) || !reflect.DeepEqual(got, wantAPI) {
		t.Fatalf("%q: api.ParseSecret gives %#v, %v", b, wantAPI, err)
	}
}

func FuzzParseSecret(f *testing.F) {
	for _, b := range vaultAnswers {
		f.Add([]byte(b))
	}
	f.Add([]byte(`{"data":{"k":"a\"b\\c\/d\b\f\n\r\t","n":[1,-2.5e+3,true,false,null,{}]},"warnings":["w"]}`))
	f.Add([]byte(`{"auth":null,"wrap_info":null,"data":{"é":"ü"}}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		checkParseSecret(t, b)
	})
}
