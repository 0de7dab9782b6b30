// Package objversion computes the ObjectVersion the provider reports for each
// object, and keeps the key those versions are made with.
//
// A version is base64url(HMAC-SHA256(key, config || contents)): equal for the
// same object configuration and contents on every node and after restarts (so
// the driver does not rewrite unchanged files or flap the
// SecretProviderClassPodStatus), yet it reveals nothing about the contents to
// anyone who can read the pod status but not the key.
package objversion

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash"
	"sort"
	"strings"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/klog/v2"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

// KeySize is the HMAC key length in bytes.
const KeySize = 32

// SecretDataKey is the data key holding the HMAC key in its Secret.
const SecretDataKey = "key"

// KeySource yields the HMAC key.
type KeySource interface {
	Key(ctx context.Context) ([]byte, error)
}

// StaticKey is a key known at start-up (from a file, or random).
type StaticKey []byte

// Key implements KeySource.
func (k StaticKey) Key(context.Context) ([]byte, error) { return k, nil }

// RandomKey returns a fresh random key.
func RandomKey() (StaticKey, error) {
	k := make([]byte, KeySize)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return k, nil
}

// SecretStore reads and creates Secrets.
type SecretStore interface {
	GetSecret(ctx context.Context, namespace, name string) (*corev1.Secret, error)
	CreateSecret(ctx context.Context, s *corev1.Secret) (*corev1.Secret, error)
}

// SecretKey keeps the key in an immutable Kubernetes Secret shared by every
// node's provider. The first provider to need it creates it; the others read
// it. Once read, the key is served from memory: no API call per Mount.
type SecretKey struct {
	Client    SecretStore
	Namespace string
	Name      string

	mu  sync.Mutex
	key []byte
}

// Key implements KeySource.
func (s *SecretKey) Key(ctx context.Context) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.key != nil {
		return s.key, nil
	}
	k, err := s.load(ctx)
	if err != nil {
		return nil, fmt.Errorf("HMAC key Secret %s/%s: %w", s.Namespace, s.Name, err)
	}
	s.key = k
	return k, nil
}

func (s *SecretKey) load(ctx context.Context) ([]byte, error) {
	sec, err := s.Client.GetSecret(ctx, s.Namespace, s.Name)
	if err == nil {
		return keyFrom(sec)
	}
	if !apierrors.IsNotFound(err) {
		return nil, fmt.Errorf("reading: %w", err)
	}
	fresh, err := RandomKey()
	if err != nil {
		return nil, err
	}
	immutable := true
	created, err := s.Client.CreateSecret(ctx, &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{
			Name:      s.Name,
			Namespace: s.Namespace,
			Labels:    map[string]string{"app.kubernetes.io/managed-by": "vault-csi-provider"},
		},
		Immutable: &immutable,
		Type:      corev1.SecretTypeOpaque,
		Data:      map[string][]byte{SecretDataKey: fresh},
	})
	switch {
	case err == nil:
		klog.InfoS("Created HMAC key Secret for object versions", "secret", klog.KRef(s.Namespace, s.Name))
		return keyFrom(created)
	case apierrors.IsAlreadyExists(err):
		// Another node won the race; use its key so versions agree.
		sec, err := s.Client.GetSecret(ctx, s.Namespace, s.Name)
		if err != nil {
			return nil, fmt.Errorf("reading after losing the create race: %w", err)
		}
		return keyFrom(sec)
	default:
		return nil, fmt.Errorf("creating: %w", err)
	}
}

func keyFrom(sec *corev1.Secret) ([]byte, error) {
	k := sec.Data[SecretDataKey]
	if len(k) != KeySize {
		return nil, fmt.Errorf("data %q holds %d bytes, want %d: delete the Secret and the provider creates a new key", SecretDataKey, len(k), KeySize)
	}
	return k, nil
}

// Version returns the version string of an object with the given contents.
func Version(key []byte, obj *config.Object, contents []byte) (string, error) {
	cfg, err := obj.VersionConfig()
	if err != nil {
		return "", fmt.Errorf("encoding object %q: %w", obj.ObjectName, err)
	}
	mac := hmac.New(sha256.New, key)
	writeField(mac, cfg)
	writeField(mac, contents)
	return base64.URLEncoding.EncodeToString(mac.Sum(nil)), nil
}

// File is one file of an object that writes several (secretKey "*"): its
// name within the object (the secret key) and contents.
type File struct {
	Name     string
	Contents []byte
}

// VersionFiles returns the version of an object that writes several files.
// The HMAC covers the object's configuration, the number of files and each
// file's name and contents, in name order: any added, removed, renamed or
// changed file changes the version; the order the files come in does not.
func VersionFiles(key []byte, obj *config.Object, files []File) (string, error) {
	cfg, err := obj.VersionConfig()
	if err != nil {
		return "", fmt.Errorf("encoding object %q: %w", obj.ObjectName, err)
	}
	sorted := append([]File(nil), files...)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	mac := hmac.New(sha256.New, key)
	writeField(mac, cfg)
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(sorted)))
	mac.Write(n[:])
	for _, f := range sorted {
		writeField(mac, []byte(f.Name))
		writeField(mac, f.Contents)
	}
	return base64.URLEncoding.EncodeToString(mac.Sum(nil)), nil
}

// writeField length-prefixes b so that no config/contents pair can be shifted
// into another with the same MAC.
func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

// ParseKey reads a key given as 32 raw bytes, or as hex or base64 text.
func ParseKey(b []byte) (StaticKey, error) {
	if len(b) == KeySize {
		return StaticKey(b), nil
	}
	s := strings.TrimSpace(string(b))
	if k, err := hex.DecodeString(s); err == nil && len(k) == KeySize {
		return k, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == KeySize {
			return k, nil
		}
	}
	return nil, fmt.Errorf("want %d bytes, raw or as hex or base64 text", KeySize)
}
