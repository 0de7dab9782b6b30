package server

import (
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"sync"
	"syscall"
)

// ErrSocketGone and ErrSocketReplaced say why the socket path no longer leads
// to this provider (Listener.Check).
var (
	ErrSocketGone     = errors.New("socket file removed")
	ErrSocketReplaced = errors.New("socket file replaced")
)

// Listener is the provider's socket. It remembers which file it created, so
// that the health probes can tell when the path no longer leads to it — the
// driver connects by path, so a removed or replaced file cuts this provider
// off even though its listening socket is still open — and so that closing it
// never removes another process's socket at the same path.
type Listener struct {
	net.Listener
	path  string
	ident fileIdent
	once  sync.Once
}

// fileIdent is what makes a socket file this one: a new file at the same
// path has another inode (or device).
type fileIdent struct{ dev, ino uint64 }

func identOf(fi fs.FileInfo) (fileIdent, bool) {
	st, ok := fi.Sys().(*syscall.Stat_t)
	if !ok {
		return fileIdent{}, false
	}
	// Dev's type differs between platforms.
	return fileIdent{dev: uint64(st.Dev), ino: st.Ino}, true
}

// newListener wraps ul, just created at path. The file is looked up right
// after the listen call; the window in which another process could replace it
// in between is the same one any path-based check has.
func newListener(ul *net.UnixListener, path string) (*Listener, error) {
	// Go would unlink the path on Close whoever's socket it then is; Close
	// below removes it only while it is still this one.
	ul.SetUnlinkOnClose(false)
	fi, err := os.Lstat(path)
	if err != nil {
		ul.Close()
		return nil, fmt.Errorf("looking up the new socket %s: %w", path, err)
	}
	id, ok := identOf(fi)
	if !ok {
		ul.Close()
		return nil, fmt.Errorf("cannot tell the identity of socket %s on this platform", path)
	}
	return &Listener{Listener: ul, path: path, ident: id}, nil
}

// Path is the socket's file system path.
func (l *Listener) Path() string { return l.path }

// Check reports whether the path still leads to this listener's socket. The
// errors wrap ErrSocketGone or ErrSocketReplaced and say what the driver
// sees.
func (l *Listener) Check() error {
	fi, err := os.Lstat(l.path)
	if errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("%w: %s no longer exists, so the driver cannot connect to this provider (was the providers directory cleaned?); restarting the provider recreates it", ErrSocketGone, l.path)
	}
	if err != nil {
		return fmt.Errorf("checking socket %s: %w", l.path, err)
	}
	if id, ok := identOf(fi); !ok || id != l.ident || fi.Mode()&fs.ModeSocket == 0 {
		return fmt.Errorf("%w: %s is no longer the socket this provider listens on (another provider started on the same path?); the driver now reaches whatever listens there, not this provider", ErrSocketReplaced, l.path)
	}
	return nil
}

// Close stops listening and removes the socket file if it is still this
// listener's. Between the check and the removal another process could take
// the path; that window is as small as the file system allows without a
// lock the other process would have to share.
func (l *Listener) Close() error {
	err := l.Listener.Close()
	l.once.Do(func() {
		if l.Check() == nil {
			_ = os.Remove(l.path)
		}
	})
	return err
}
