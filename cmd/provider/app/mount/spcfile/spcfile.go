// Package spcfile reads the Kubernetes objects `provider mount` starts from:
// a SecretProviderClass and, optionally, the pod (or the pod template of a
// workload) whose CSI volume uses it. Files are YAML or JSON as `kubectl
// apply` takes them: several documents separated by `---`, or a `kind: List`
// as `kubectl get -o yaml` prints it; documents of other kinds are skipped.
//
// A SecretProviderClass is decoded strictly, as the API server does with
// kubectl's default field validation (unknown or duplicate fields are
// errors), into the driver's own v1 type, and checked the way the driver
// checks it before calling a provider. Pods and workloads are decoded
// leniently: only the identity and the CSI volume are read.
package spcfile

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	kjson "k8s.io/apimachinery/pkg/runtime/serializer/json"
	"k8s.io/apimachinery/pkg/util/yaml"
	secretsstorev1 "sigs.k8s.io/secrets-store-csi-driver/apis/v1"
)

const (
	// Group is the SecretProviderClass API group.
	Group = "secrets-store.csi.x-k8s.io"
	// Kind is the SecretProviderClass kind.
	Kind = "SecretProviderClass"
	// ProviderName is the spec.provider this provider serves (its socket is
	// vault.sock in the driver's providers directory).
	ProviderName = "vault"
	// DriverName is the Secrets Store CSI driver's name in a pod's csi volume.
	DriverName = "secrets-store.csi.k8s.io"
	// SPCAttribute is the volume attribute naming the SecretProviderClass.
	SPCAttribute = "secretProviderClass"
)

// apiVersions the CRD serves (v1alpha1 is deprecated; same schema).
var apiVersions = map[string]bool{Group + "/v1": true, Group + "/v1alpha1": true}

// doc is one object of a file.
type doc struct {
	where      string // "document 2", "document 1, item 3"
	apiVersion string
	kind       string
	name       string
	namespace  string
	json       []byte
	source     []byte // as written (YAML), for duplicate-field checks
}

func (d doc) String() string {
	s := d.kind
	if d.name != "" {
		s += " " + d.name
	}
	return s + " (" + d.where + ")"
}

// documents splits data into objects, converting YAML to JSON and expanding
// kind: List.
func documents(data []byte) ([]doc, error) {
	r := yaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []doc
	for n := 1; ; n++ {
		raw, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		j, err := yaml.ToJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", n, err)
		}
		j = bytes.TrimSpace(j)
		if len(j) == 0 || string(j) == "null" { // empty, or only comments
			continue
		}
		ds, err := objects(j, raw, fmt.Sprintf("document %d", n))
		if err != nil {
			return nil, err
		}
		out = append(out, ds...)
	}
	return out, nil
}

func objects(j, source []byte, where string) ([]doc, error) {
	if j[0] != '{' {
		return nil, fmt.Errorf("%s is not an object with apiVersion and kind", where)
	}
	var head struct {
		APIVersion string `json:"apiVersion"`
		Kind       string `json:"kind"`
		Metadata   struct {
			Name      string `json:"name"`
			Namespace string `json:"namespace"`
		} `json:"metadata"`
		Items []json.RawMessage `json:"items"`
	}
	if err := json.Unmarshal(j, &head); err != nil {
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	if strings.HasSuffix(head.Kind, "List") && head.Items != nil {
		var out []doc
		for i, item := range head.Items {
			item = bytes.TrimSpace(item)
			ds, err := objects(item, item, fmt.Sprintf("%s, item %d", where, i+1))
			if err != nil {
				return nil, err
			}
			out = append(out, ds...)
		}
		return out, nil
	}
	return []doc{{where: where, apiVersion: head.APIVersion, kind: head.Kind, name: head.Metadata.Name, namespace: head.Metadata.Namespace, json: j, source: source}}, nil
}

// strictCodec decodes YAML (or JSON) like the API server with field
// validation Strict: case-sensitive field names, unknown and duplicate fields
// are errors. Decoding into a type the (empty) scheme does not know skips the
// scheme.
var strictCodec = kjson.NewSerializerWithOptions(kjson.DefaultMetaFactory, runtime.NewScheme(), runtime.NewScheme(), kjson.SerializerOptions{Yaml: true, Strict: true})

// SecretProviderClass returns the SecretProviderClass named name in data, or
// the only one when name is empty, decoded strictly and checked as the driver
// checks it: spec.provider is "vault" and spec.parameters is not empty.
func SecretProviderClass(data []byte, name string) (*secretsstorev1.SecretProviderClass, error) {
	docs, err := documents(data)
	if err != nil {
		return nil, err
	}
	var all, picked []doc
	for _, d := range docs {
		if d.kind != Kind {
			continue
		}
		all = append(all, d)
		if name == "" || d.name == name {
			picked = append(picked, d)
		}
	}
	switch {
	case len(all) == 0:
		return nil, fmt.Errorf("no SecretProviderClass in it%s", found(docs))
	case len(picked) == 0:
		return nil, fmt.Errorf("no SecretProviderClass named %q in it (it has %s)", name, names(all))
	case len(picked) > 1 && name == "":
		return nil, fmt.Errorf("it holds %d SecretProviderClasses (%s): choose one with -name", len(picked), names(picked))
	case len(picked) > 1:
		return nil, fmt.Errorf("it holds %d SecretProviderClasses named %q (%s): keep one", len(picked), name, wheres(picked))
	}
	d := picked[0]
	if !apiVersions[d.apiVersion] {
		return nil, fmt.Errorf("%s: apiVersion is %q, want %s/v1", d, d.apiVersion, Group)
	}
	spc := &secretsstorev1.SecretProviderClass{}
	if _, _, err := strictCodec.Decode(d.source, nil, spc); err != nil {
		return nil, fmt.Errorf("%s: %v%s", d, err, decodeHint(err))
	}
	if spc.Name == "" {
		return nil, fmt.Errorf("%s: metadata.name is not set", d)
	}
	switch p := string(spc.Spec.Provider); p {
	case ProviderName:
	case "":
		return nil, fmt.Errorf("SecretProviderClass %s: spec.provider is not set; set it to %q (the driver refuses a class without a provider)", spc.Name, ProviderName)
	default:
		return nil, fmt.Errorf("SecretProviderClass %s: spec.provider is %q, so the driver would call the %q provider, not this one (%q)", spc.Name, p, p, ProviderName)
	}
	if len(spc.Spec.Parameters) == 0 {
		return nil, fmt.Errorf("SecretProviderClass %s: spec.parameters is empty (the driver refuses a class without parameters; this provider needs at least roleName and objects)", spc.Name)
	}
	return spc, nil
}

// decodeHint explains the most common decoding error: YAML that is not a
// string where the CRD wants one (parameters: {vaultSkipTLSVerify: true}).
func decodeHint(err error) string {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) && strings.Contains(te.Field, "parameters") {
		return "; every value in spec.parameters is a string: quote \"true\" and numbers, and write objects as a block string (objects: |)"
	}
	return ""
}

// Pod is the identity and the secrets-store CSI volume taken from a Pod (or
// a workload's pod template).
type Pod struct {
	// Kind is "Pod", or the workload's kind (Deployment, ...), whose pods'
	// names and UIDs are not known in advance: Name is then the workload's.
	Kind               string
	Name               string
	Namespace          string
	UID                string
	ServiceAccountName string // "default" when the spec names none
	// Volume is the CSI volume's name and VolumeAttributes its attributes,
	// which the driver lays over the SecretProviderClass parameters.
	Volume           string
	VolumeAttributes map[string]string
	// NodePublishSecretRef names the volume's nodePublishSecretRef Secret,
	// if any (not read: the vault provider uses none of its contents).
	NodePublishSecretRef string
}

// SecretProviderClass is the class the volume uses.
func (p *Pod) SecretProviderClass() string { return p.VolumeAttributes[SPCAttribute] }

// templatePaths are the kinds with a pod template, and where it is.
var templatePaths = map[string]string{
	"Pod":                   "",
	"PodTemplate":           "template",
	"Deployment":            "spec.template",
	"StatefulSet":           "spec.template",
	"DaemonSet":             "spec.template",
	"ReplicaSet":            "spec.template",
	"ReplicationController": "spec.template",
	"Job":                   "spec.template",
	"CronJob":               "spec.jobTemplate.spec.template",
}

// workload is any of templatePaths' kinds: metadata and the pod spec.
type workload struct {
	meta metav1.ObjectMeta
	spec corev1.PodSpec
}

// decodeWorkload reads the metadata and pod spec of an object of kind,
// leniently: unknown fields (of another Kubernetes version) are ignored.
func decodeWorkload(kind string, j []byte) (*workload, error) {
	var obj struct {
		Metadata metav1.ObjectMeta `json:"metadata"`
		Spec     json.RawMessage   `json:"spec"`
		Template json.RawMessage   `json:"template"`
	}
	if err := json.Unmarshal(j, &obj); err != nil {
		return nil, err
	}
	w := &workload{meta: obj.Metadata}
	var err error
	switch templatePaths[kind] {
	case "":
		err = unmarshalIfSet(obj.Spec, &w.spec)
	case "template":
		var t corev1.PodTemplateSpec
		err = unmarshalIfSet(obj.Template, &t)
		w.spec = t.Spec
	case "spec.template":
		var s struct {
			Template corev1.PodTemplateSpec `json:"template"`
		}
		err = unmarshalIfSet(obj.Spec, &s)
		w.spec = s.Template.Spec
	default: // CronJob
		var s struct {
			JobTemplate struct {
				Spec struct {
					Template corev1.PodTemplateSpec `json:"template"`
				} `json:"spec"`
			} `json:"jobTemplate"`
		}
		err = unmarshalIfSet(obj.Spec, &s)
		w.spec = s.JobTemplate.Spec.Template.Spec
	}
	if err != nil {
		where := templatePaths[kind]
		if where == "" {
			where = "spec"
		}
		return nil, fmt.Errorf("%s: %w", where, err)
	}
	return w, nil
}

func unmarshalIfSet(raw json.RawMessage, v any) error {
	if len(raw) == 0 {
		return nil
	}
	return json.Unmarshal(raw, v)
}

type candidate struct {
	doc    doc
	w      *workload
	spec   *corev1.PodSpec
	volume *corev1.Volume
}

func (c candidate) String() string {
	return fmt.Sprintf("%s %s volume %s (class %q)", c.doc.kind, c.doc.name, c.volume.Name, c.volume.CSI.VolumeAttributes[SPCAttribute])
}

// FindPod returns the pod and CSI volume in data that mount a
// SecretProviderClass: the Pod or workload with a secrets-store.csi.k8s.io
// volume named volume (any, when empty) using the class spc (any, when
// empty). Exactly one must match. The volume must be one the driver accepts:
// read-only and naming its class.
func FindPod(data []byte, volume, spc string) (*Pod, error) {
	docs, err := documents(data)
	if err != nil {
		return nil, err
	}
	var (
		pods                    []doc
		named, csiVols, matches []candidate
		notCSI                  []string
		volumeNamedSeen         bool
	)
	for _, d := range docs {
		if _, ok := templatePaths[d.kind]; !ok {
			continue
		}
		pods = append(pods, d)
		w, err := decodeWorkload(d.kind, d.json)
		if err != nil {
			return nil, fmt.Errorf("%s: %v", d, err)
		}
		spec := &w.spec
		for i := range spec.Volumes {
			v := &spec.Volumes[i]
			isCSI := v.CSI != nil && v.CSI.Driver == DriverName
			if volume != "" && v.Name == volume {
				volumeNamedSeen = true
				if !isCSI {
					notCSI = append(notCSI, d.String())
				}
			}
			if !isCSI {
				continue
			}
			c := candidate{doc: d, w: w, spec: spec, volume: v}
			csiVols = append(csiVols, c)
			if volume != "" && v.Name != volume {
				continue
			}
			named = append(named, c)
			if spc == "" || v.CSI.VolumeAttributes[SPCAttribute] == spc {
				matches = append(matches, c)
			}
		}
	}
	switch {
	case len(pods) == 0:
		return nil, fmt.Errorf("no Pod or workload (Deployment, StatefulSet, DaemonSet, Job, CronJob, ...) in it%s", found(docs))
	case len(notCSI) > 0 && len(named) == 0:
		return nil, fmt.Errorf("volume %q of %s is not a %s CSI volume", volume, strings.Join(notCSI, ", "), DriverName)
	case volume != "" && !volumeNamedSeen:
		return nil, fmt.Errorf("no volume named %q in %s; %s", volume, joinDocs(pods), csiList(csiVols))
	case len(csiVols) == 0:
		return nil, fmt.Errorf("no %s CSI volume in %s", DriverName, joinDocs(pods))
	case len(matches) == 0:
		return nil, fmt.Errorf("no %s CSI volume uses SecretProviderClass %q; %s", DriverName, spc, csiList(named))
	case len(matches) > 1:
		return nil, fmt.Errorf("%d secrets-store CSI volumes match, choose one with -volume (or -name): %s", len(matches), strings.TrimPrefix(csiList(matches), "secrets-store CSI volumes: "))
	}
	c := matches[0]
	attrs := c.volume.CSI.VolumeAttributes
	if attrs[SPCAttribute] == "" {
		return nil, fmt.Errorf("%s: volume %s has no volumeAttributes.%s, which the driver requires", c.doc, c.volume.Name, SPCAttribute)
	}
	if c.volume.CSI.ReadOnly == nil || !*c.volume.CSI.ReadOnly {
		return nil, fmt.Errorf("%s: volume %s must set readOnly: true (the driver refuses the mount: \"Readonly is not true in request\")", c.doc, c.volume.Name)
	}
	p := &Pod{
		Kind:               c.doc.kind,
		Name:               c.w.meta.Name,
		Namespace:          c.w.meta.Namespace,
		ServiceAccountName: c.spec.ServiceAccountName,
		Volume:             c.volume.Name,
		VolumeAttributes:   make(map[string]string, len(attrs)),
	}
	if p.Kind == "Pod" {
		p.UID = string(c.w.meta.UID)
	}
	if p.ServiceAccountName == "" {
		p.ServiceAccountName = c.spec.DeprecatedServiceAccount
	}
	if p.ServiceAccountName == "" {
		p.ServiceAccountName = "default"
	}
	for k, v := range attrs {
		p.VolumeAttributes[k] = v
	}
	if ref := c.volume.CSI.NodePublishSecretRef; ref != nil {
		p.NodePublishSecretRef = ref.Name
	}
	return p, nil
}

func found(docs []doc) string {
	if len(docs) == 0 {
		return " (no objects at all)"
	}
	s := make([]string, len(docs))
	for i, d := range docs {
		s[i] = d.String()
	}
	return " (found " + strings.Join(s, ", ") + ")"
}

func names(docs []doc) string {
	s := make([]string, len(docs))
	for i, d := range docs {
		s[i] = d.name
	}
	sort.Strings(s)
	return strings.Join(s, ", ")
}

func wheres(docs []doc) string {
	s := make([]string, len(docs))
	for i, d := range docs {
		s[i] = d.where
	}
	return strings.Join(s, ", ")
}

func joinDocs(docs []doc) string {
	s := make([]string, len(docs))
	for i, d := range docs {
		s[i] = d.String()
	}
	return strings.Join(s, ", ")
}

func csiList(cs []candidate) string {
	if len(cs) == 0 {
		return "there is no " + DriverName + " CSI volume"
	}
	s := make([]string, len(cs))
	for i, c := range cs {
		s[i] = c.String()
	}
	return "secrets-store CSI volumes: " + strings.Join(s, "; ")
}
