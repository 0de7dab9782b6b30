package cache

import (
	"testing"
	"time"
)

func TestLifetime(t *testing.T) {
	t0 := time.Unix(1000, 0)
	at := func(d time.Duration) func() time.Time { return func() time.Time { return t0.Add(d) } }
	for _, tc := range []struct {
		name     string
		fraction float64
		age      time.Duration
		fresh    bool
		margin   time.Duration // of 90s
	}{
		{"default before 2/3", 0, 59 * time.Second, true, 30 * time.Second},
		{"default at 2/3", 0, 60 * time.Second, false, 30 * time.Second},
		{"out of range means default", 1.5, 60 * time.Second, false, 30 * time.Second},
		{"half", 0.5, 44 * time.Second, true, 45 * time.Second},
		{"half passed", 0.5, 45 * time.Second, false, 45 * time.Second},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := lifetime{fraction: tc.fraction, clock: at(tc.age)}
			if got := l.fresh(t0, 90*time.Second); got != tc.fresh {
				t.Errorf("fresh = %v, want %v", got, tc.fresh)
			}
			if got := l.margin(90 * time.Second); got != tc.margin {
				t.Errorf("margin = %v, want %v", got, tc.margin)
			}
			if !l.shortRenewal(tc.margin-time.Second, 90*time.Second) || l.shortRenewal(tc.margin, 90*time.Second) {
				t.Errorf("shortRenewal boundary is not the margin %v", tc.margin)
			}
		})
	}
	if (lifetime{}).now().IsZero() {
		t.Error("nil clock is not the wall clock")
	}
}
