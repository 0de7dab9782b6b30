package main

import (
	"reflect"
	"testing"
)

func TestExtractFlag(t *testing.T) {
	for _, tc := range []struct {
		name      string
		args      []string
		wantValue string
		wantRest  []string
		wantErr   bool
	}{
		{name: "absent", args: []string{"--a=1", "b"}, wantRest: []string{"--a=1", "b"}},
		{name: "equals", args: []string{"--a=1", "--embedded-etcd-dir=/d", "b"}, wantValue: "/d", wantRest: []string{"--a=1", "b"}},
		{name: "separate", args: []string{"--embedded-etcd-dir", "/d", "--a=1"}, wantValue: "/d", wantRest: []string{"--a=1"}},
		{name: "last wins", args: []string{"--embedded-etcd-dir=/x", "--embedded-etcd-dir=/y"}, wantValue: "/y", wantRest: []string{}},
		{name: "after --", args: []string{"--", "--embedded-etcd-dir=/d"}, wantRest: []string{"--", "--embedded-etcd-dir=/d"}},
		{name: "prefix only", args: []string{"--embedded-etcd-dirx=/d"}, wantRest: []string{"--embedded-etcd-dirx=/d"}},
		{name: "missing value", args: []string{"--embedded-etcd-dir"}, wantErr: true},
		{name: "empty value", args: []string{"--embedded-etcd-dir="}, wantErr: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			value, rest, err := extractFlag(tc.args, etcdDirFlag)
			if (err != nil) != tc.wantErr {
				t.Fatalf("err = %v, want error: %v", err, tc.wantErr)
			}
			if tc.wantErr {
				return
			}
			if value != tc.wantValue || !reflect.DeepEqual(rest, tc.wantRest) {
				t.Errorf("got (%q, %q), want (%q, %q)", value, rest, tc.wantValue, tc.wantRest)
			}
		})
	}
}
