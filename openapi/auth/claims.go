package auth

import (
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"
)

// jwtClaims are the verified claims of a token.
type jwtClaims struct {
	subject string
	scopes  []string
	// scopeFound is false when the scope claim is absent.
	scopeFound bool
}

// checkClaims checks exp, nbf, iat, iss and aud and reads sub and the
// scope claim.
func (a *Authenticator) checkClaims(c map[string]any) (*jwtClaims, error) {
	cfg := a.cfg.JWT
	now := cfg.Now()
	leeway := cfg.Leeway

	exp, ok, err := numericDate(c, "exp")
	switch {
	case err != nil:
		return nil, err
	case !ok:
		return nil, errors.New(`token has no "exp" (expiry) claim; one is required`)
	case !now.Before(exp.Add(leeway)):
		return nil, fmt.Errorf("token expired at %s", stamp(exp))
	}
	if nbf, ok, err := numericDate(c, "nbf"); err != nil {
		return nil, err
	} else if ok && now.Add(leeway).Before(nbf) {
		return nil, fmt.Errorf("token is not valid before %s", stamp(nbf))
	}
	if iat, ok, err := numericDate(c, "iat"); err != nil {
		return nil, err
	} else if ok && now.Add(leeway).Before(iat) {
		return nil, fmt.Errorf("token is issued in the future (%s)", stamp(iat))
	}

	switch iss, ok := c["iss"].(string); {
	case !ok:
		return nil, fmt.Errorf(`token has no "iss" (issuer) claim; want %q`, cfg.Issuer)
	case iss != cfg.Issuer:
		return nil, fmt.Errorf("issuer %q not accepted", clip(iss))
	}

	auds, err := stringOrList(c, "aud")
	switch {
	case err != nil:
		return nil, err
	case auds == nil:
		return nil, fmt.Errorf(`token has no "aud" (audience) claim; want %q`, cfg.Audience)
	case !slices.Contains(auds, cfg.Audience):
		shown := make([]string, len(auds))
		for i, s := range auds {
			shown[i] = fmt.Sprintf("%q", clip(s))
		}
		return nil, fmt.Errorf("audience %s not accepted", strings.Join(shown, ", "))
	}

	out := &jwtClaims{}
	if sub, ok := c["sub"].(string); ok {
		out.subject = sub
	}
	scopes, err := stringOrList(c, cfg.ScopeClaim)
	if err != nil {
		return nil, err
	}
	if scopes != nil {
		out.scopeFound = true
		// OAuth's "scope" is one space-separated string (RFC 8693
		// section 4.2); a list may hold such strings too.
		for _, s := range scopes {
			out.scopes = append(out.scopes, strings.Fields(s)...)
		}
	}
	return out, nil
}

// numericDate reads an RFC 7519 NumericDate claim: seconds since the
// epoch, possibly fractional.
func numericDate(c map[string]any, name string) (time.Time, bool, error) {
	v, ok := c[name]
	if !ok || v == nil {
		return time.Time{}, false, nil
	}
	n, isNum := v.(json.Number)
	if !isNum {
		return time.Time{}, false, fmt.Errorf("token claim %q must be a number of seconds since 1970", name)
	}
	f, err := n.Float64()
	if err != nil || math.IsNaN(f) || math.IsInf(f, 0) || f < 0 || f > 1<<40 {
		return time.Time{}, false, fmt.Errorf("token claim %q is out of range", name)
	}
	sec, frac := math.Modf(f)
	return time.Unix(int64(sec), int64(frac*1e9)).UTC(), true, nil
}

// stringOrList reads a claim that is a string or an array of strings; nil
// when absent.
func stringOrList(c map[string]any, name string) ([]string, error) {
	switch v := c[name].(type) {
	case nil:
		return nil, nil
	case string:
		return []string{v}, nil
	case []any:
		out := make([]string, 0, len(v))
		for _, e := range v {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("token claim %q must be a string or an array of strings", name)
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("token claim %q must be a string or an array of strings", name)
}

func stamp(t time.Time) string { return t.UTC().Format(time.RFC3339) }

// clip shortens a claim value echoed in a message.
func clip(s string) string {
	const maxLen = 100
	if len(s) > maxLen {
		return s[:maxLen] + "…"
	}
	return s
}
