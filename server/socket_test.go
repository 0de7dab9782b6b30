package server

import (
	"errors"
	"net"
	"os"
	"path/filepath"
	"testing"
)

func TestListenerCheck(t *testing.T) {
	path := filepath.Join(shortDir(t), "p.sock")
	lis, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer lis.Close()
	if lis.Path() != path {
		t.Errorf("Path() = %q, want %q", lis.Path(), path)
	}
	if err := lis.Check(); err != nil {
		t.Fatalf("Check on a fresh socket: %v", err)
	}

	if err := os.Remove(path); err != nil {
		t.Fatal(err)
	}
	if err := lis.Check(); !errors.Is(err, ErrSocketGone) {
		t.Errorf("Check after removal = %v, want ErrSocketGone", err)
	}

	// Another process's socket at the path.
	other, err := net.Listen("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	if err := lis.Check(); !errors.Is(err, ErrSocketReplaced) {
		t.Errorf("Check with another socket at the path = %v, want ErrSocketReplaced", err)
	}
	other.Close()

	// A regular file at the path.
	if err := os.WriteFile(path, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := lis.Check(); !errors.Is(err, ErrSocketReplaced) {
		t.Errorf("Check with a regular file at the path = %v, want ErrSocketReplaced", err)
	}
	// Closing leaves a file that is not this socket alone.
	lis.Close()
	if _, err := os.Lstat(path); err != nil {
		t.Errorf("Close removed a file that was not its socket: %v", err)
	}
}

func TestListenerCloseRemovesOwnSocket(t *testing.T) {
	path := filepath.Join(shortDir(t), "p.sock")
	lis, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := lis.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Lstat(path); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("socket still there after Close: %v", err)
	}
	// A second Close (gRPC may close twice) does not remove a newcomer.
	next, err := Listen(path)
	if err != nil {
		t.Fatal(err)
	}
	defer next.Close()
	_ = lis.Close()
	if err := next.Check(); err != nil {
		t.Errorf("a second Close of the old listener hit the new socket: %v", err)
	}
}
