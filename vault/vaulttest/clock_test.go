package vaulttest_test

import (
	"sync"
	"testing"
	"time"

	"github.com/vault-csi-provider/vault-csi-provider/vault/vaulttest"
)

func TestClock(t *testing.T) {
	var c vaulttest.Clock
	if !c.Now().Equal(vaulttest.Epoch) {
		t.Errorf("zero clock reads %v", c.Now())
	}
	var wg sync.WaitGroup
	for range 10 {
		wg.Go(func() {
			c.Advance(time.Second)
			_ = c.Now()
		})
	}
	wg.Wait()
	if got := c.Now().Sub(vaulttest.Epoch); got != 10*time.Second {
		t.Errorf("clock advanced %v, want 10s", got)
	}

	shared := &vaulttest.Clock{}
	s := vaulttest.New(t, vaulttest.WithClock(shared))
	if s.Clock() != shared {
		t.Error("WithClock not used")
	}
}

func TestEventually(t *testing.T) {
	n := 0
	vaulttest.Eventually(t, "three polls", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Errorf("polled %d times", n)
	}
}
