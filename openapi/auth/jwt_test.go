package auth_test

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"math/big"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tasker-runner/tasker-runner/openapi/auth"
)

// Test keys, generated once per run (RSA generation is the slow part).
type testKeys struct {
	rsa, otherRSA *rsa.PrivateKey
	ec, otherEC   *ecdsa.PrivateKey
}

var jwtTestKeys = sync.OnceValue(func() testKeys {
	must := func(err error) {
		if err != nil {
			panic(err)
		}
	}
	var k testKeys
	var err error
	k.rsa, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.otherRSA, err = rsa.GenerateKey(rand.Reader, 2048)
	must(err)
	k.ec, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	k.otherEC, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	must(err)
	return k
})

// pkixPEM encodes pub as a PEM "PUBLIC KEY".
func pkixPEM(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

// signJWT builds a compact JWS of claims. key is a []byte (HS256), an
// *rsa.PrivateKey (RS256), an *ecdsa.PrivateKey (ES256) or nil (no
// signature, for alg "none"). extraHeader is merged into the header.
func signJWT(t testing.TB, alg string, key any, claims map[string]any, extraHeader ...map[string]any) string {
	t.Helper()
	header := map[string]any{"alg": alg, "typ": "JWT"}
	for _, h := range extraHeader {
		for k, v := range h {
			header[k] = v
		}
	}
	enc := func(v any) string {
		b, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		return base64.RawURLEncoding.EncodeToString(b)
	}
	signed := enc(header) + "." + enc(claims)
	digest := sha256.Sum256([]byte(signed))
	var sig []byte
	switch k := key.(type) {
	case nil:
	case []byte:
		mac := hmac.New(sha256.New, k)
		mac.Write([]byte(signed))
		sig = mac.Sum(nil)
	case *rsa.PrivateKey:
		var err error
		if sig, err = rsa.SignPKCS1v15(rand.Reader, k, crypto.SHA256, digest[:]); err != nil {
			t.Fatal(err)
		}
	case *ecdsa.PrivateKey:
		r, s, err := ecdsa.Sign(rand.Reader, k, digest[:])
		if err != nil {
			t.Fatal(err)
		}
		sig = make([]byte, 64)
		r.FillBytes(sig[:32])
		s.FillBytes(sig[32:])
	default:
		t.Fatalf("signJWT: unsupported key %T", key)
	}
	return signed + "." + base64.RawURLEncoding.EncodeToString(sig)
}

func TestJWTConfigErrors(t *testing.T) {
	t.Parallel()
	keys := jwtTestKeys()
	secret := strings.Repeat("s", 32)
	good := auth.JWTConfig{Enabled: true, Issuer: "iss", Audience: "aud", HS256Secret: secret}
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	p384, err := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	rsaPrivDER, err := x509.MarshalPKCS8PrivateKey(keys.rsa)
	if err != nil {
		t.Fatal(err)
	}
	withKeys := func(pems ...[]byte) auth.JWTConfig {
		c := good
		c.HS256Secret = ""
		c.PublicKeysPEM = pems
		return c
	}
	for _, tc := range []struct {
		name string
		cfg  auth.Config
		want string // "" for success
	}{
		{"hs256 ok", auth.Config{Enabled: true, JWT: good}, ""},
		{"disabled checks nothing", auth.Config{APIKeys: []auth.APIKey{{Name: "x", Hash: "nope"}}}, ""},
		{"no credentials at all", auth.Config{Enabled: true}, "no request could authenticate"},
		{"bad hash", auth.Config{Enabled: true, APIKeys: []auth.APIKey{{Name: "ci", Hash: "md5:abc", Scope: auth.ScopeRead}}}, `api key 0 ("ci"): hash must be "sha256:"`},
		{"bad scope", auth.Config{Enabled: true, APIKeys: []auth.APIKey{{Name: "ci", Hash: hashKey("k"), Scope: "write"}}}, `scope "write" is not`},
		{"short secret", auth.Config{Enabled: true, JWT: func() auth.JWTConfig { c := good; c.HS256Secret = "short"; return c }()}, "at least 32 bytes, got 5"},
		{"no issuer", auth.Config{Enabled: true, JWT: func() auth.JWTConfig { c := good; c.Issuer = ""; return c }()}, "issuer is required"},
		{"no audience", auth.Config{Enabled: true, JWT: func() auth.JWTConfig { c := good; c.Audience = ""; return c }()}, "audience is required"},
		{"no key", auth.Config{Enabled: true, JWT: withKeys()}, "no key"},
		{"rsa and ec ok", auth.Config{Enabled: true, JWT: withKeys(pkixPEM(t, &keys.rsa.PublicKey), pkixPEM(t, &keys.ec.PublicKey))}, ""},
		{"pkcs1 ok", auth.Config{Enabled: true, JWT: withKeys(pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&keys.rsa.PublicKey)}))}, ""},
		{"certificate ok", auth.Config{Enabled: true, JWT: withKeys(certPEM(t, keys.ec))}, ""},
		{"garbage", auth.Config{Enabled: true, JWT: withKeys(pkixPEM(t, &keys.rsa.PublicKey), []byte("not pem"))}, "public key 1: no PEM block found"},
		{"empty file", auth.Config{Enabled: true, JWT: withKeys([]byte("\n"))}, "public key 0: empty"},
		{"private key", auth.Config{Enabled: true, JWT: withKeys(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: rsaPrivDER}))}, "is a private key"},
		{"rsa 1024", auth.Config{Enabled: true, JWT: withKeys(pkixPEM(t, &small.PublicKey))}, "RSA key of 1024 bits is too short"},
		{"p384", auth.Config{Enabled: true, JWT: withKeys(pkixPEM(t, &p384.PublicKey))}, "curve P-384 is not supported"},
		{"corrupt der", auth.Config{Enabled: true, JWT: withKeys(pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: []byte{1, 2, 3}}))}, `public key 0: PEM block 1 ("PUBLIC KEY")`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := auth.New(tc.cfg)
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("NewAuthenticator: %v", err)
			case tc.want != "" && err == nil:
				t.Fatalf("NewAuthenticator succeeded, want error containing %q", tc.want)
			case tc.want != "" && !strings.Contains(err.Error(), tc.want):
				t.Fatalf("NewAuthenticator error %q, want it to contain %q", err, tc.want)
			}
		})
	}
}

func TestJWTParsePublicKeysPEM(t *testing.T) {
	t.Parallel()
	keys := jwtTestKeys()
	both := append(pkixPEM(t, &keys.rsa.PublicKey), pkixPEM(t, &keys.ec.PublicKey)...)
	got, err := auth.ParsePublicKeysPEM(both)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 {
		t.Fatalf("parsed %d keys, want 2", len(got))
	}
	if _, ok := got[0].(*rsa.PublicKey); !ok {
		t.Fatalf("key 0 is %T, want *rsa.PublicKey", got[0])
	}
	if _, ok := got[1].(*ecdsa.PublicKey); !ok {
		t.Fatalf("key 1 is %T, want *ecdsa.PublicKey", got[1])
	}
}

// certPEM is a self-signed certificate of key, PEM-encoded.
func certPEM(t testing.TB, key *ecdsa.PrivateKey) []byte {
	t.Helper()
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "issuer"},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Unix(1<<32, 0),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
}
