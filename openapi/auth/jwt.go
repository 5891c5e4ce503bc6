package auth

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/big"
	"strings"
)

// jwtKeys holds the verification keys by algorithm.
type jwtKeys struct {
	hs256 []byte
	rsa   []*rsa.PublicKey
	ec    []*ecdsa.PublicKey
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
		return nil, fmt.Errorf("jwt: %s", strings.Join(problems, "; "))
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
