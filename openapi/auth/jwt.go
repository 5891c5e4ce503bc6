package openapi

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math"
	"math/big"
	"slices"
	"strings"
	"time"
)

// JWT bearer tokens (RFC 7519) signed with JWS compact serialisation
// (RFC 7515), verified with the standard library only. Accepted algorithms
// (RFC 7518): HS256 against the configured shared secret, RS256 against the
// configured RSA public keys, ES256 against the configured P-256 public keys.
// The token's "alg" picks which kind of key verifies it and never the other
// way round: an HS256 token is never checked against a public key used as an
// HMAC secret, and "none" is refused.

// JWT limits and defaults.
const (
	// JWTLeewayDefault is the clock skew allowed on exp, nbf and iat when
	// [JWTConfig.Leeway] is zero.
	JWTLeewayDefault = 30 * time.Second
	// MaxJWTBytes bounds the accepted token size, so decoding and
	// verifying cost little whatever a client sends.
	MaxJWTBytes = 8 << 10
	// MinHS256SecretBytes is the shortest accepted HS256 secret: RFC 7518
	// section 3.2 requires a key at least as long as the hash output.
	MinHS256SecretBytes = 32
	// MinRSAKeyBits is the smallest accepted RSA public key.
	MinRSAKeyBits = 2048
)

// jwtKeys holds the verification keys by algorithm.
type jwtKeys struct {
	hs256 []byte
	rsa   []*rsa.PublicKey
	ec    []*ecdsa.PublicKey
}

// ParsePublicKeysPEM parses the public keys in one PEM document, as read
// from one file of worker.web.auth.jwt.public_key_files. Accepted blocks:
// "PUBLIC KEY" (PKIX: RSA or ECDSA P-256), "RSA PUBLIC KEY" (PKCS #1) and
// "CERTIFICATE" (its subject public key). Private keys are refused: the
// server only needs the public half. A document without any key is an error.
func ParsePublicKeysPEM(data []byte) ([]crypto.PublicKey, error) {
	var keys []crypto.PublicKey
	rest := data
	for n := 1; ; n++ {
		var block *pem.Block
		block, rest = pem.Decode(rest)
		if block == nil {
			break
		}
		key, err := parsePEMBlock(block)
		if err != nil {
			return nil, fmt.Errorf("PEM block %d (%q): %w", n, block.Type, err)
		}
		keys = append(keys, key)
	}
	if len(keys) == 0 {
		if len(bytes.TrimSpace(data)) == 0 {
			return nil, errors.New("empty: want a PEM public key")
		}
		return nil, errors.New("no PEM block found: want a PEM \"PUBLIC KEY\" (RSA or ECDSA P-256)")
	}
	return keys, nil
}

func parsePEMBlock(b *pem.Block) (crypto.PublicKey, error) {
	var (
		key any
		err error
	)
	switch b.Type {
	case "PUBLIC KEY":
		key, err = x509.ParsePKIXPublicKey(b.Bytes)
	case "RSA PUBLIC KEY":
		key, err = x509.ParsePKCS1PublicKey(b.Bytes)
	case "CERTIFICATE":
		var cert *x509.Certificate
		if cert, err = x509.ParseCertificate(b.Bytes); err == nil {
			key = cert.PublicKey
		}
	case "PRIVATE KEY", "RSA PRIVATE KEY", "EC PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "OPENSSH PRIVATE KEY":
		return nil, errors.New("is a private key: configure only the public key (openssl pkey -pubout)")
	default:
		return nil, errors.New(`unsupported PEM type: want "PUBLIC KEY", "RSA PUBLIC KEY" or "CERTIFICATE"`)
	}
	if err != nil {
		return nil, err
	}
	switch k := key.(type) {
	case *rsa.PublicKey:
		if bits := k.N.BitLen(); bits < MinRSAKeyBits {
			return nil, fmt.Errorf("RSA key of %d bits is too short: want at least %d", bits, MinRSAKeyBits)
		}
		return k, nil
	case *ecdsa.PublicKey:
		if k.Curve != elliptic.P256() {
			return nil, fmt.Errorf("ECDSA key on curve %s is not supported: ES256 needs P-256", k.Curve.Params().Name)
		}
		return k, nil
	}
	return nil, fmt.Errorf("%T keys are not supported: want RSA (RS256) or ECDSA P-256 (ES256)", key)
}

// newJWTKeys checks the JWT configuration and parses its keys.
func newJWTKeys(cfg JWTConfig) (*jwtKeys, error) {
	var problems []string
	if cfg.Issuer == "" {
		problems = append(problems, "issuer is required")
	}
	if cfg.Audience == "" {
		problems = append(problems, "audience is required")
	}
	if cfg.HS256Secret == "" && len(cfg.PublicKeysPEM) == 0 {
		problems = append(problems, "no key: set an HS256 secret or public keys")
	}
	if n := len(cfg.HS256Secret); n > 0 && n < MinHS256SecretBytes {
		problems = append(problems, fmt.Sprintf("HS256 secret must be at least %d bytes, got %d", MinHS256SecretBytes, n))
	}
	k := &jwtKeys{}
	if cfg.HS256Secret != "" {
		k.hs256 = []byte(cfg.HS256Secret)
	}
	for i, p := range cfg.PublicKeysPEM {
		keys, err := ParsePublicKeysPEM(p)
		if err != nil {
			problems = append(problems, fmt.Sprintf("public key %d: %v", i, err))
			continue
		}
		for _, key := range keys {
			switch key := key.(type) {
			case *rsa.PublicKey:
				k.rsa = append(k.rsa, key)
			case *ecdsa.PublicKey:
				k.ec = append(k.ec, key)
			}
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("openapi: jwt: %s", strings.Join(problems, "; "))
	}
	return k, nil
}

// algs lists the algorithms the configured keys can verify, for messages.
func (k *jwtKeys) algs() []string {
	var out []string
	if k.hs256 != nil {
		out = append(out, "HS256")
	}
	if len(k.rsa) > 0 {
		out = append(out, "RS256")
	}
	if len(k.ec) > 0 {
		out = append(out, "ES256")
	}
	return out
}

// looksLikeJWT reports whether s has the shape of a JWS compact token:
// three base64url parts separated by dots.
func looksLikeJWT(s string) bool {
	if strings.Count(s, ".") != 2 {
		return false
	}
	for _, c := range []byte(s) {
		if !(c == '.' || c == '-' || c == '_' || c >= '0' && c <= '9' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z') {
			return false
		}
	}
	return true
}

var b64 = base64.RawURLEncoding.Strict()

// jwtClaims are the verified claims of a token.
type jwtClaims struct {
	subject string
	scopes  []string
	// scopeFound is false when the scope claim is absent.
	scopeFound bool
}

// verifyJWT checks the token's signature and claims and returns its
// claims, or an error whose message is safe to show the client: it names
// what failed, never the token.
func (a *Authenticator) verifyJWT(token string) (*jwtClaims, error) {
	if len(token) > MaxJWTBytes {
		return nil, fmt.Errorf("token is %d bytes; at most %d are accepted", len(token), MaxJWTBytes)
	}
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return nil, errors.New("malformed token: want three dot-separated parts")
	}

	headerJSON, err := b64.DecodeString(parts[0])
	if err != nil {
		return nil, errors.New("malformed token: header is not unpadded base64url")
	}
	var header struct {
		Alg  string          `json:"alg"`
		Crit json.RawMessage `json:"crit"`
	}
	if err := json.Unmarshal(headerJSON, &header); err != nil {
		return nil, errors.New("malformed token: header is not a JSON object")
	}
	if header.Crit != nil {
		// RFC 7515 section 4.1.11: extensions we do not understand must
		// make the token invalid.
		return nil, errors.New(`token header "crit" names extensions this server does not support`)
	}
	sig, err := b64.DecodeString(parts[2])
	if err != nil {
		return nil, errors.New("malformed token: signature is not unpadded base64url")
	}
	signed := token[:len(parts[0])+1+len(parts[1])]
	if err := a.jwt.verify(header.Alg, signed, sig); err != nil {
		return nil, err
	}

	// The signature holds: the claims are the issuer's.
	payload, err := b64.DecodeString(parts[1])
	if err != nil {
		return nil, errors.New("malformed token: payload is not unpadded base64url")
	}
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.UseNumber()
	var claims map[string]any
	if err := dec.Decode(&claims); err != nil || claims == nil {
		return nil, errors.New("malformed token: claims are not a JSON object")
	}
	return a.checkClaims(claims)
}

// verify checks sig over signed with the keys of alg's kind only.
func (k *jwtKeys) verify(alg string, signed string, sig []byte) error {
	refuse := func() error {
		accepted := k.algs()
		return fmt.Errorf("token algorithm %q is not accepted; this server accepts %s", alg, strings.Join(accepted, ", "))
	}
	digest := sha256.Sum256([]byte(signed))
	switch alg {
	case "HS256":
		if k.hs256 == nil {
			return refuse()
		}
		mac := hmac.New(sha256.New, k.hs256)
		mac.Write([]byte(signed))
		if !hmac.Equal(mac.Sum(nil), sig) {
			return errors.New("token signature is invalid")
		}
		return nil
	case "RS256":
		if len(k.rsa) == 0 {
			return refuse()
		}
		for _, pub := range k.rsa {
			if rsa.VerifyPKCS1v15(pub, crypto.SHA256, digest[:], sig) == nil {
				return nil
			}
		}
		return errors.New("token signature is invalid")
	case "ES256":
		if len(k.ec) == 0 {
			return refuse()
		}
		// RFC 7518 section 3.4: R and S as 32-byte big-endian integers,
		// concatenated (not ASN.1).
		if len(sig) != 64 {
			return fmt.Errorf("token signature is invalid: ES256 wants 64 bytes, got %d", len(sig))
		}
		r, s := new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])
		for _, pub := range k.ec {
			if ecdsa.Verify(pub, digest[:], r, s) {
				return nil
			}
		}
		return errors.New("token signature is invalid")
	case "":
		return errors.New(`token header has no "alg"`)
	}
	return refuse()
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
