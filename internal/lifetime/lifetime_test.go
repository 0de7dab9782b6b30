package lifetime

import (
	"testing"
	"time"
)

func TestPolicy(t *testing.T) {
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
			p := Policy{Fraction: tc.fraction, Now: at(tc.age)}
			if got := p.Fresh(t0, 90*time.Second); got != tc.fresh {
				t.Errorf("Fresh = %v, want %v", got, tc.fresh)
			}
			if got := p.Margin(90 * time.Second); got != tc.margin {
				t.Errorf("Margin = %v, want %v", got, tc.margin)
			}
			if !p.ShortRenewal(tc.margin-time.Second, 90*time.Second) || p.ShortRenewal(tc.margin, 90*time.Second) {
				t.Errorf("ShortRenewal boundary is not the margin %v", tc.margin)
			}
		})
	}
	if (Policy{}).Time().IsZero() {
		t.Error("nil Now is not the wall clock")
	}
}
