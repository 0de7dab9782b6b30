// Package lifetime is the one refresh rule the token cache and the lease
// cache share: a token, lease or certificate is served as it is until
// Fraction of its lifetime has passed; then it is renewed, and a renewal
// that grants less than the remaining (1-Fraction) of the original lifetime
// is no better than a replacement.
package lifetime

import "time"

// DefaultFraction applies when Fraction is not in (0, 1).
const DefaultFraction = 2.0 / 3.0

// Policy is the rule with its clock.
type Policy struct {
	Fraction float64
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Time is the policy's clock.
func (p Policy) Time() time.Time {
	if p.Now != nil {
		return p.Now()
	}
	return time.Now()
}

func (p Policy) fraction() float64 {
	if p.Fraction <= 0 || p.Fraction >= 1 {
		return DefaultFraction
	}
	return p.Fraction
}

// Fresh reports whether something issued at issued, living ttl, is still
// before its refresh point.
func (p Policy) Fresh(issued time.Time, ttl time.Duration) bool {
	return p.Time().Sub(issued) < time.Duration(p.fraction()*float64(ttl))
}

// Margin is how much of life is left when a refresh is due.
func (p Policy) Margin(life time.Duration) time.Duration {
	return time.Duration((1 - p.fraction()) * float64(life))
}

// ShortRenewal reports whether a renewal granting granted, of an original
// lifetime original, leaves too little to be worth keeping.
func (p Policy) ShortRenewal(granted, original time.Duration) bool {
	return granted < p.Margin(original)
}
