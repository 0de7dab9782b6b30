package config

import (
	"crypto/sha256"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"
	"sync"
	"testing"
)

const classObjects = `
- {objectName: a, secretPath: secret/data/a, secretKey: k}
- {objectName: tls/tls.crt, secretPath: pki/issue/r, method: PUT, secretArgs: {common_name: x.example, ttl: 1h}, secretKey: certificate}
- {objectName: q, secretPath: "secret/data/q?version=2", secretArgs: {extra: [1, 2]}}
- {objectName: t, template: '{{ .Values.a }}'}
`

func attrsFor(t *testing.T, pod, objects string) string {
	t.Helper()
	b, err := json.Marshal(map[string]string{
		ParamRoleName: "app", ParamObjects: objects,
		AttrPodName: pod, AttrPodNamespace: "ns", AttrPodUID: "uid-" + pod, AttrServiceAccountName: "sa-" + pod,
	})
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func parseWith(t *testing.T, classes *Classes, pod, objects string, lim Limits) (*Config, error) {
	t.Helper()
	return ParseCached(attrsFor(t, pod, objects), "null", "420", Defaults{VaultAddress: "https://vault:8200", AuthMountPath: "kubernetes", Limits: lim}, classes)
}

// A cached class is what parsing it again gives: the same objects, the
// same requests and version inputs, and each pod's own identity.
func TestClassesHitIsAParse(t *testing.T) {
	classes := NewClasses(0, 0)
	first, err := parseWith(t, classes, "p1", classObjects, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	second, err := parseWith(t, classes, "p2", classObjects, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	fresh, err := parseWith(t, nil, "p2", classObjects, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if classes.Len() != 1 {
		t.Fatalf("%d classes cached, want 1: the pod is not part of the key", classes.Len())
	}
	if second.Objects[0].derived != first.Objects[0].derived {
		t.Fatal("the second Mount of the class parsed it again")
	}
	if second.Pod.Name != "p2" || second.Pod.UID != "uid-p2" || second.Pod.ServiceAccountName != "sa-p2" {
		t.Errorf("pod = %+v, want p2's", second.Pod)
	}
	if len(second.Objects) != len(fresh.Objects) {
		t.Fatalf("%d objects, fresh parse %d", len(second.Objects), len(fresh.Objects))
	}
	for i := range fresh.Objects {
		got, want := second.Objects[i], fresh.Objects[i]
		if got.ObjectName != want.ObjectName || got.SecretPath != want.SecretPath || got.Method != want.Method ||
			!reflect.DeepEqual(got.SecretArgs, want.SecretArgs) || got.Template != want.Template {
			t.Errorf("object %d = %+v, fresh %+v", i, got, want)
		}
		gc, err1 := got.VersionConfig()
		wc, err2 := want.VersionConfig()
		plain, err3 := json.Marshal(&want)
		if err1 != nil || err2 != nil || err3 != nil || string(gc) != string(wc) || string(wc) != string(plain) {
			t.Errorf("object %d: version config %s / %s / %s (%v %v %v)", i, gc, wc, plain, err1, err2, err3)
		}
		if got.IsTemplate() {
			continue
		}
		gr, err1 := got.Request()
		wr, err2 := want.Request()
		var built Object = want
		built.derived = nil
		br, err3 := built.Request()
		if err1 != nil || err2 != nil || err3 != nil || gr.Key() != wr.Key() || wr.Key() != br.computeKey() {
			t.Errorf("object %d: request keys %q / %q / %q (%v %v %v)", i, gr.Key(), wr.Key(), br.computeKey(), err1, err2, err3)
		}
	}
}

// Each Mount gets its own slice: changing one does not change the class.
func TestClassesCopies(t *testing.T) {
	classes := NewClasses(0, 0)
	a, err := parseWith(t, classes, "p1", classObjects, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	a.Objects[0].ObjectName = "changed"
	a.Objects = a.Objects[:1]
	b, err := parseWith(t, classes, "p2", classObjects, Limits{})
	if err != nil {
		t.Fatal(err)
	}
	if len(b.Objects) != 4 || b.Objects[0].ObjectName != "a" {
		t.Errorf("objects after another Mount changed its copy: %d, %q", len(b.Objects), b.Objects[0].ObjectName)
	}
}

// The limits are part of the key: a class cached under generous limits is
// still refused under tighter ones.
func TestClassesKeyedByLimits(t *testing.T) {
	classes := NewClasses(0, 0)
	if _, err := parseWith(t, classes, "p1", classObjects, Limits{}); err != nil {
		t.Fatal(err)
	}
	_, err := parseWith(t, classes, "p1", classObjects, Limits{MaxObjects: 2})
	if err == nil || !strings.Contains(err.Error(), FlagMaxObjects) {
		t.Fatalf("under -max-objects 2: %v, want the limit's refusal", err)
	}
	if classes.Len() != 1 {
		t.Errorf("%d classes cached, want 1 (errors are not cached)", classes.Len())
	}
}

func TestClassesErrorsNotCached(t *testing.T) {
	classes := NewClasses(0, 0)
	for range 2 {
		if _, err := parseWith(t, classes, "p1", "- {objectName: a}", Limits{}); err == nil {
			t.Fatal("an object without secretPath was accepted")
		}
	}
	if classes.Len() != 0 {
		t.Errorf("%d classes cached after errors", classes.Len())
	}
}

func classN(i int) string {
	return fmt.Sprintf("- {objectName: a, secretPath: secret/data/c%d, secretKey: k}\n", i)
}

func TestClassesBoundedInEntries(t *testing.T) {
	classes := NewClasses(3, 0)
	for i := range 5 {
		if _, err := parseWith(t, classes, "p", classN(i), Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	if classes.Len() != 3 {
		t.Fatalf("%d classes cached, want 3", classes.Len())
	}
	// Least recently used first out: 2 is used again, then 5 comes.
	before, _ := parseWith(t, classes, "p", classN(2), Limits{})
	if _, err := parseWith(t, classes, "p", classN(5), Limits{}); err != nil {
		t.Fatal(err)
	}
	again, _ := parseWith(t, classes, "p", classN(2), Limits{})
	if again.Objects[0].derived != before.Objects[0].derived {
		t.Error("the most recently used class was evicted")
	}
	three, _ := parseWith(t, classes, "p", classN(3), Limits{})
	if classes.Len() != 3 {
		t.Fatalf("%d classes cached, want 3", classes.Len())
	}
	if _, ok := classes.items[classKey{sum: sha256.Sum256([]byte(classN(3))), lim: DefaultLimits}]; !ok || three == nil {
		t.Error("class 3, just parsed, is not cached")
	}
}

func TestClassesBoundedInBytes(t *testing.T) {
	one := classSize(classN(0), []Object{{}})
	classes := NewClasses(100, 2*one+one/2)
	for i := range 4 {
		if _, err := parseWith(t, classes, "p", classN(i), Limits{}); err != nil {
			t.Fatal(err)
		}
	}
	if classes.Len() != 2 || classes.bytes > 2*one+one/2 {
		t.Errorf("%d classes, %d bytes cached; want 2 within %d", classes.Len(), classes.bytes, 2*one+one/2)
	}
	// A class larger than the whole cache is parsed, not cached.
	big := NewClasses(100, one/2)
	if _, err := parseWith(t, big, "p", classN(0), Limits{}); err != nil {
		t.Fatal(err)
	}
	if big.Len() != 0 {
		t.Errorf("a class over the byte bound was cached")
	}
}

// Concurrent Mounts of one class and of others, under -race.
func TestClassesConcurrent(t *testing.T) {
	classes := NewClasses(4, 0)
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range 50 {
				objs := classObjects
				if i%3 == 0 {
					objs = classN(g*100 + i)
				}
				cfg, err := parseWith(t, classes, fmt.Sprintf("p%d", g), objs, Limits{})
				if err != nil {
					t.Error(err)
					return
				}
				for j := range cfg.Objects {
					if !cfg.Objects[j].IsTemplate() {
						r, err := cfg.Objects[j].Request()
						if err != nil || r.Key() == "" {
							t.Error(err)
						}
					}
					if _, err := cfg.Objects[j].VersionConfig(); err != nil {
						t.Error(err)
					}
				}
			}
		}()
	}
	wg.Wait()
	if classes.Len() > 4 {
		t.Errorf("%d classes cached, bound 4", classes.Len())
	}
}
