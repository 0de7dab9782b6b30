package cache

import "time"

// DefaultRefreshFraction is the share of a token's, lease's or certificate's
// lifetime after which it is renewed or replaced, when Options.RefreshFraction
// is not in (0, 1).
const DefaultRefreshFraction = 2.0 / 3.0

// lifetime is the one refresh rule the token and the lease cache share: a
// token, lease or certificate is served as it is until fraction of its
// lifetime has passed; then it is renewed, and a renewal that grants less
// than the remaining (1-fraction) of the original lifetime is no better than
// a replacement. It carries the caches' clock, so both see the same time.
type lifetime struct {
	fraction float64
	// clock is nil for time.Now.
	clock func() time.Time
}

// now is the rule's clock.
func (l lifetime) now() time.Time {
	if l.clock != nil {
		return l.clock()
	}
	return time.Now()
}

func (l lifetime) share() float64 {
	if l.fraction <= 0 || l.fraction >= 1 {
		return DefaultRefreshFraction
	}
	return l.fraction
}

// fresh reports whether something issued at issued, living ttl, is still
// before its refresh point.
func (l lifetime) fresh(issued time.Time, ttl time.Duration) bool {
	return l.now().Sub(issued) < time.Duration(l.share()*float64(ttl))
}

// margin is how much of life is left when a refresh is due.
func (l lifetime) margin(life time.Duration) time.Duration {
	return time.Duration((1 - l.share()) * float64(life))
}

// shortRenewal reports whether a renewal granting granted, of an original
// lifetime original, leaves too little to be worth keeping.
func (l lifetime) shortRenewal(granted, original time.Duration) bool {
	return granted < l.margin(original)
}
