package vault

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"syscall"

	"github.com/vault-csi-provider/vault-csi-provider/config"
)

// The TLS file paths are SecretProviderClass parameters: any pod author on
// the node chooses them. So each file is read only when it is a regular file
// (a device such as /dev/zero never ends, a FIFO without a writer blocks
// forever), and only up to a size no certificate reaches.
const (
	// maxTLSFileBytes bounds one CA, certificate or key file.
	maxTLSFileBytes = 1 << 20
	// maxCAEntries bounds the entries (files and directories) read below a
	// CA directory, and maxCADirBytes their total size.
	maxCAEntries  = 1000
	maxCADirBytes = 16 << 20
)

// beforeOpen is called with each TLS file path before it is opened; tests
// use it to make a file slow.
var beforeOpen = func(path string) {}

// tlsConfig builds the client TLS configuration for t with the semantics
// of api.Config.ConfigureTLS (client certificate; CA file, else CA
// directory, else the system roots; server name; skip verify), reading the
// files through readTLSFile's limits instead of without any.
func tlsConfig(t config.TLS) (*tls.Config, error) {
	tc := &tls.Config{MinVersion: tls.VersionTLS12}
	switch {
	case t.ClientCert != "" && t.ClientKey != "":
		certPEM, err := readTLSFile("client certificate", t.ClientCert, maxTLSFileBytes)
		if err != nil {
			return nil, err
		}
		keyPEM, err := readTLSFile("client key", t.ClientKey, maxTLSFileBytes)
		if err != nil {
			return nil, err
		}
		cert, err := tls.X509KeyPair(certPEM, keyPEM)
		if err != nil {
			return nil, fmt.Errorf("client certificate %s and key %s: %v", t.ClientCert, t.ClientKey, err)
		}
		// Whatever CAs the server names: Vault's cert auth may trust a CA
		// the listener does not (as the Vault client does).
		tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }
	case t.ClientCert != "" || t.ClientKey != "":
		return nil, errors.New("both client cert and client key must be provided")
	}
	switch {
	case t.CACert != "":
		pem, err := readTLSFile("CA file", t.CACert, maxTLSFileBytes)
		if err != nil {
			return nil, err
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", t.CACert)
		}
		tc.RootCAs = pool
	case t.CADirectory != "":
		pool, err := loadCADirectory(t.CADirectory)
		if err != nil {
			return nil, err
		}
		tc.RootCAs = pool
	}
	tc.InsecureSkipVerify = t.SkipTLSVerify
	tc.ServerName = t.ServerName
	return tc, nil
}

// readTLSFile reads path, what it is for naming it in errors, if it is a
// regular file of at most limit bytes. The type is checked before opening
// (opening a FIFO blocks until a writer comes; opening some devices has
// effects) and again on the open file, which is opened non-blocking in case
// the path changed in between.
func readTLSFile(what, path string, limit int64) ([]byte, error) {
	beforeOpen(path)
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, bare(err))
	}
	if !fi.Mode().IsRegular() {
		return nil, fmt.Errorf("%s %s is %s, not a regular file", what, path, fileKind(fi.Mode()))
	}
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK|syscall.O_NOCTTY, 0)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, bare(err))
	}
	defer f.Close()
	ofi, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, bare(err))
	}
	if !ofi.Mode().IsRegular() || !os.SameFile(fi, ofi) {
		return nil, fmt.Errorf("%s %s changed while it was opened", what, path)
	}
	b, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, bare(err))
	}
	if int64(len(b)) > limit {
		return nil, fmt.Errorf("%s %s is larger than %s, more than any certificate needs", what, path, sizeString(limit))
	}
	return b, nil
}

// loadCADirectory reads every file below dir as PEM certificates, as
// go-rootcerts' LoadCAPath does (subdirectories included, symbolic links to
// files followed, anything that is not PEM an error), within maxCAEntries
// entries and maxCADirBytes bytes.
func loadCADirectory(dir string) (*x509.CertPool, error) {
	pool := x509.NewCertPool()
	entries, bytesLeft := 0, int64(maxCADirBytes)
	var walk func(d string) error
	walk = func(d string) error {
		beforeOpen(d)
		fi, err := os.Stat(d)
		if err != nil {
			return fmt.Errorf("CA directory %s: %w", d, bare(err))
		}
		if !fi.IsDir() {
			return fmt.Errorf("CA directory %s is %s, not a directory", d, fileKind(fi.Mode()))
		}
		f, err := os.OpenFile(d, os.O_RDONLY|syscall.O_NONBLOCK, 0)
		if err != nil {
			return fmt.Errorf("CA directory %s: %w", d, bare(err))
		}
		// ReadDir(n) reads at most n entries, so a directory with millions
		// of them costs no more than one over the limit.
		list, err := f.ReadDir(maxCAEntries - entries + 1)
		f.Close()
		if err != nil && !errors.Is(err, io.EOF) {
			return fmt.Errorf("CA directory %s: %w", d, bare(err))
		}
		if entries += len(list); entries > maxCAEntries {
			return fmt.Errorf("CA directory %s holds more than %d entries", dir, maxCAEntries)
		}
		sort.Slice(list, func(i, j int) bool { return list[i].Name() < list[j].Name() })
		for _, e := range list {
			p := filepath.Join(d, e.Name())
			if e.IsDir() { // a real directory; a symbolic link to one is refused below, as filepath.Walk does
				if err := walk(p); err != nil {
					return err
				}
				continue
			}
			pem, err := readTLSFile("CA file", p, maxTLSFileBytes)
			if err != nil {
				return err
			}
			if bytesLeft -= int64(len(pem)); bytesLeft < 0 {
				return fmt.Errorf("CA directory %s holds more than %s of files", dir, sizeString(maxCADirBytes))
			}
			if !pool.AppendCertsFromPEM(pem) {
				return fmt.Errorf("CA file %s (in CA directory %s) holds no PEM certificate", p, dir)
			}
		}
		return nil
	}
	if err := walk(dir); err != nil {
		return nil, err
	}
	return pool, nil
}

// bare drops the operation and path an *fs.PathError repeats: messages name
// the file once, with what it was for.
func bare(err error) error {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err
	}
	return err
}

func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a FIFO"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	default:
		return "of type " + m.Type().String()
	}
}

// sizeString says n bytes in MiB when it is a whole number of them.
func sizeString(n int64) string {
	if n >= 1<<20 && n%(1<<20) == 0 {
		return fmt.Sprintf("%d MiB", n>>20)
	}
	return fmt.Sprintf("%d bytes", n)
}
